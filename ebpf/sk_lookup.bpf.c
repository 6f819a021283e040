// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sk_lookup: inbound plaintext capture, attached to each enrolled pod's namespace.
 *
 * A new TCP connection to the pod's IP on an application port is handed to the proxy's
 * 15006 listener instead of the app's. The accepted socket keeps the original local
 * address (pod IP and app port), which is how the proxy learns the original destination.
 * Skipped: the proxy's own ports, the tunnel, the probe, excluded ports, connections from
 * 127.0.0.6 (the proxy delivering to the app) and from the pod to itself.
 * Needs kernel 5.9+.
 */
#include "maps.h"

static __always_inline int nm_port_reserved(__u16 port)
{
	return port == nm_inbound_port || port == nm_outbound_port || port == nm_tunnel_port || port == nm_probe_port ||
	       port == NM_PORT_ADMIN || port == NM_PORT_HEALTH;
}

SEC("sk_lookup")
int nm_sk_lookup(struct bpf_sk_lookup *ctx)
{
	struct nm_ip_key key = {};
	struct bpf_sock *listener;
	__u16 port = (__u16)ctx->local_port;

	if (ctx->protocol != NM_IPPROTO_TCP)
		return SK_PASS;
	if (nm_port_reserved(port) || nm_port_excluded(port, NM_DIR_INBOUND))
		return SK_PASS;

	key.family = ctx->family;
	if (ctx->family == NM_AF_INET) {
		if (ctx->remote_ip4 == bpf_htonl(NM_INBOUND_PASSTHROUGH_IP4) || ctx->remote_ip4 == ctx->local_ip4)
			return SK_PASS;
		nm_addr_from_ip4(key.addr, ctx->local_ip4);
	} else {
		__u32 l[4] = { ctx->local_ip6[0], ctx->local_ip6[1], ctx->local_ip6[2], ctx->local_ip6[3] };
		if (ctx->remote_ip6[0] == l[0] && ctx->remote_ip6[1] == l[1] && ctx->remote_ip6[2] == l[2] &&
		    ctx->remote_ip6[3] == l[3])
			return SK_PASS;
		nm_addr_from_ip6(key.addr, l);
	}

	listener = bpf_map_lookup_elem(&nm_in_listen_v1, &key);
	if (!listener)
		return SK_PASS; /* not a pod IP we serve, or the proxy is down: normal lookup */
	if (bpf_sk_assign(ctx, listener, 0) == 0)
		nm_count(NM_STAT_LOOKUP_STEERED);
	bpf_sk_release(listener);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
