// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cgroup/getsockopt: answers SO_ORIGINAL_DST (IPv4) and IP6T_SO_ORIGINAL_DST (IPv6) for
 * the proxy's accepted sockets from the address-pair map, so the proxy has one code path
 * for eBPF and iptables capture (where conntrack answers the same call).
 * Every other getsockopt passes through untouched: this runs for every call made by a
 * process below the attach point, so the common case returns first.
 */
#include "maps.h"

struct nm_sockaddr_in {
	__u16 sin_family;
	__u16 sin_port; /* network order */
	__u32 sin_addr; /* network order */
	__u8 zero[8];
};

struct nm_sockaddr_in6 {
	__u16 sin6_family;
	__u16 sin6_port;
	__u32 sin6_flowinfo;
	__u32 sin6_addr[4];
	__u32 sin6_scope_id;
};

SEC("cgroup/getsockopt")
int nm_getsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk;
	struct nm_orig_dst *orig;
	struct nm_pair_key key = {};
	void *optval = ctx->optval;
	void *optval_end = ctx->optval_end;

	if (ctx->optname != NM_SO_ORIGINAL_DST || (ctx->level != NM_SOL_IP && ctx->level != NM_SOL_IPV6))
		return 1;
	sk = ctx->sk;
	if (!sk)
		return 1;

	/* The accepted socket's peer is the app socket whose address sockops recorded.
	 * Every field is read once, unconditionally: the verifier refuses arithmetic on a
	 * socket pointer, which clang emits for reads inside branches. */
	__u32 family = nm_read32(sk->family);
	__u16 dport = nm_read32(sk->dst_port);
	__u32 d4 = nm_read32(sk->dst_ip4);
	__u32 d[4] = { nm_read32(sk->dst_ip6[0]), nm_read32(sk->dst_ip6[1]), nm_read32(sk->dst_ip6[2]), nm_read32(sk->dst_ip6[3]) };

	key.netns_cookie = bpf_get_netns_cookie(ctx);
	key.family = family;
	key.port = bpf_ntohs(dport);
	if (family == NM_AF_INET)
		nm_addr_from_ip4(key.addr, d4);
	else
		nm_addr_from_ip6(key.addr, d);
	orig = bpf_map_lookup_elem(&nm_orig_by_pair_v1, &key);
	if (!orig)
		return 1;

	if (ctx->level == NM_SOL_IP && orig->family == NM_AF_INET) {
		struct nm_sockaddr_in *sin = optval;
		if (optval + sizeof(*sin) > optval_end)
			return 1;
		__builtin_memset(sin, 0, sizeof(*sin));
		sin->sin_family = NM_AF_INET;
		sin->sin_port = bpf_htons(orig->port);
		sin->sin_addr = ((__u32 *)orig->addr)[3];
		ctx->optlen = sizeof(*sin);
	} else if (ctx->level == NM_SOL_IPV6 && orig->family == NM_AF_INET6) {
		struct nm_sockaddr_in6 *sin6 = optval;
		const __u32 *a = (const __u32 *)orig->addr;
		if (optval + sizeof(*sin6) > optval_end)
			return 1;
		__builtin_memset(sin6, 0, sizeof(*sin6));
		sin6->sin6_family = NM_AF_INET6;
		sin6->sin6_port = bpf_htons(orig->port);
		sin6->sin6_addr[0] = a[0];
		sin6->sin6_addr[1] = a[1];
		sin6->sin6_addr[2] = a[2];
		sin6->sin6_addr[3] = a[3];
		ctx->optlen = sizeof(*sin6);
	} else {
		return 1;
	}
	ctx->retval = 0;
	nm_count(NM_STAT_GETSOCKOPT_ANSWERED);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
