// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sockops: runs when TCP connections of enrolled pods (and of the proxy) are established.
 *
 * Active side (the app's captured socket): move the original destination from the
 * socket-cookie map to the address-pair map, where the proxy's SO_ORIGINAL_DST query on
 * the accepted socket finds it (keyed by the app socket's own address, which is the
 * accepted socket's peer).
 * Both sides, when sk_msg acceleration is on: put the loopback sockets of app<->proxy
 * connections into the pair sockhash, so sk_msg can hand bytes straight to the peer.
 * Needs kernel 5.15+ (bpf_get_netns_cookie in sockops).
 */
#include "maps.h"

struct nm_endpoints {
	__u32 family;
	__u16 local_port;
	__u16 remote_port;
	__u8 local_addr[16];
	__u8 remote_addr[16];
};

static __always_inline void nm_read_endpoints(struct bpf_sock_ops *skops, struct nm_endpoints *ep)
{
	/* Each context field is read once, unconditionally, with a constant offset: the
	 * verifier refuses loads through a ctx pointer that clang has offset in a branch. */
	__u32 family = nm_read32(skops->family);
	__u32 local_port = nm_read32(skops->local_port);
	__u32 remote_port = nm_read32(skops->remote_port);
	__u32 l4 = nm_read32(skops->local_ip4);
	__u32 r4 = nm_read32(skops->remote_ip4);
	__u32 l[4] = { nm_read32(skops->local_ip6[0]), nm_read32(skops->local_ip6[1]), nm_read32(skops->local_ip6[2]), nm_read32(skops->local_ip6[3]) };
	__u32 r[4] = { nm_read32(skops->remote_ip6[0]), nm_read32(skops->remote_ip6[1]), nm_read32(skops->remote_ip6[2]), nm_read32(skops->remote_ip6[3]) };

	ep->family = family;
	ep->local_port = (__u16)local_port;
	ep->remote_port = (__u16)bpf_ntohl(remote_port);
	if (family == NM_AF_INET) {
		nm_addr_from_ip4(ep->local_addr, l4);
		nm_addr_from_ip4(ep->remote_addr, r4);
	} else {
		nm_addr_from_ip6(ep->local_addr, l);
		nm_addr_from_ip6(ep->remote_addr, r);
	}
}

static __always_inline int nm_is_loopback_addr(const __u8 addr[16])
{
	const __u32 *w = (const __u32 *)addr;
	if (nm_ip6_is_v4mapped(w[0], w[1], w[2]))
		return nm_ip4_is_loopback(w[3]);
	return nm_ip6_is_loopback(w[0], w[1], w[2], w[3]);
}

static __always_inline void nm_pair_insert(struct bpf_sock_ops *skops, __u64 netns, const struct nm_endpoints *ep)
{
	struct nm_sock_key key = {
		.netns_cookie = netns,
		.family = ep->family,
		.local_port = ep->local_port,
		.remote_port = ep->remote_port,
	};
	__builtin_memcpy(key.local_addr, ep->local_addr, 16);
	__builtin_memcpy(key.remote_addr, ep->remote_addr, 16);
	if (bpf_sock_hash_update(skops, &nm_sock_pairs_v1, &key, BPF_ANY) == 0)
		nm_count(NM_STAT_SOCKHASH_INSERTED);
}

static __always_inline void nm_active_established(struct bpf_sock_ops *skops, __u64 netns)
{
	struct nm_endpoints ep = {};
	struct nm_orig_dst *orig;
	__u64 cookie = bpf_get_socket_cookie(skops);

	orig = bpf_map_lookup_elem(&nm_orig_by_cookie_v1, &cookie);
	if (!orig)
		return;
	nm_read_endpoints(skops, &ep);

	struct nm_pair_key pair = { .netns_cookie = netns, .family = ep.family, .port = ep.local_port };
	__builtin_memcpy(pair.addr, ep.local_addr, 16);
	bpf_map_update_elem(&nm_orig_by_pair_v1, &pair, orig, BPF_ANY);
	bpf_map_delete_elem(&nm_orig_by_cookie_v1, &cookie);
	nm_count(NM_STAT_ORIGDST_STORED);

	if (nm_sk_msg_enabled && ep.remote_port == nm_outbound_port && nm_is_loopback_addr(ep.remote_addr))
		nm_pair_insert(skops, netns, &ep);
}

static __always_inline void nm_passive_established(struct bpf_sock_ops *skops, __u64 netns)
{
	struct nm_endpoints ep = {};

	if (!nm_sk_msg_enabled)
		return;
	nm_read_endpoints(skops, &ep);
	/* Only the proxy's end of a captured connection: accepted on the outbound port over
	 * loopback, inside a pod namespace. */
	if (ep.local_port != nm_outbound_port || !nm_is_loopback_addr(ep.local_addr))
		return;
	nm_pair_insert(skops, netns, &ep);
}

SEC("sockops")
int nm_sockops(struct bpf_sock_ops *skops)
{
	__u64 netns;

	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		netns = bpf_get_netns_cookie(skops);
		nm_active_established(skops, netns);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		netns = bpf_get_netns_cookie(skops);
		nm_passive_established(skops, netns);
		break;
	default:
		break;
	}
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
