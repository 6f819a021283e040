// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cgroup/connect4 and cgroup/connect6: outbound capture.
 *
 * A TCP connect() from an enrolled pod namespace is rewritten to the proxy's outbound
 * listener on loopback (127.0.0.1:15001 or [::1]:15001) inside the same namespace; the
 * original destination is remembered by socket cookie for sockops to pick up.
 * Needs kernel 5.7+ (bpf_get_netns_cookie in sock_addr programs).
 */
#include "maps.h"

struct nm_connect_target {
	__u32 family;
	__u16 port; /* host order */
	__u8 addr[16];
	int loopback;
};

/* Returns 1 when the connect should go to the proxy, 0 when it stays direct. */
static __always_inline int nm_should_capture(struct bpf_sock_addr *ctx, __u64 netns, const struct nm_connect_target *dst)
{
	struct nm_pod_config *pod;
	struct nm_listener_key lkey = {};
	struct bpf_sock *listener;
	struct bpf_sock *sk;

	if (ctx->type != NM_SOCK_STREAM)
		return 0;
	pod = bpf_map_lookup_elem(&nm_enrolled_v1, &netns);
	if (!pod || !(pod->flags & NM_POD_CAPTURE_OUTBOUND))
		return 0;

	/* The proxy's own upstream sockets live in the pod namespace too. */
	sk = ctx->sk;
	if (sk && sk->mark == nm_proxy_mark)
		goto excluded;
	if (dst->loopback || nm_port_excluded(dst->port, NM_DIR_OUTBOUND) || nm_cidr_excluded(dst->addr))
		goto excluded;

	/* Fail open: only capture while the proxy listens in this namespace. */
	lkey.netns_cookie = netns;
	lkey.family = dst->family == NM_AF_INET6 ? NM_AF_INET6 : NM_AF_INET;
	listener = bpf_map_lookup_elem(&nm_out_listen_v1, &lkey);
	if (!listener) {
		nm_count(NM_STAT_CONNECT_NO_LISTENER);
		return 0;
	}
	bpf_sk_release(listener);
	return 1;

excluded:
	nm_count(NM_STAT_CONNECT_EXCLUDED);
	return 0;
}

static __always_inline void nm_remember(struct bpf_sock_addr *ctx, const struct nm_connect_target *dst)
{
	struct nm_orig_dst orig = { .family = dst->family, .port = dst->port };
	__u64 cookie = bpf_get_socket_cookie(ctx);

	__builtin_memcpy(orig.addr, dst->addr, 16);
	bpf_map_update_elem(&nm_orig_by_cookie_v1, &cookie, &orig, BPF_ANY);
	nm_count(NM_STAT_CONNECT_REDIRECTED);
}

SEC("cgroup/connect4")
int nm_connect4(struct bpf_sock_addr *ctx)
{
	struct nm_connect_target dst = { .family = NM_AF_INET };
	__u64 netns = bpf_get_netns_cookie(ctx);

	dst.port = bpf_ntohs((__u16)ctx->user_port);
	dst.loopback = nm_ip4_is_loopback(ctx->user_ip4);
	nm_addr_from_ip4(dst.addr, ctx->user_ip4);
	if (!nm_should_capture(ctx, netns, &dst))
		return 1;

	nm_remember(ctx, &dst);
	ctx->user_ip4 = bpf_htonl(NM_LOCALHOST4);
	ctx->user_port = bpf_htons(nm_outbound_port);
	return 1;
}

SEC("cgroup/connect6")
int nm_connect6(struct bpf_sock_addr *ctx)
{
	struct nm_connect_target dst = { .family = NM_AF_INET6 };
	__u64 netns = bpf_get_netns_cookie(ctx);
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
	int v4mapped = nm_ip6_is_v4mapped(w0, w1, w2);

	/* A dual-stack socket connecting to ::ffff:a.b.c.d is IPv4 on the wire: it goes to
	 * the IPv4 listener through ::ffff:127.0.0.1. */
	if (v4mapped) {
		dst.family = NM_AF_INET;
		dst.loopback = nm_ip4_is_loopback(w3);
	} else {
		dst.loopback = nm_ip6_is_loopback(w0, w1, w2, w3);
	}
	dst.port = bpf_ntohs((__u16)ctx->user_port);
	dst.addr[0] = 0; /* keep the verifier sure the key is initialised */
	{
		__u32 *a = (__u32 *)dst.addr;
		a[0] = w0;
		a[1] = w1;
		a[2] = w2;
		a[3] = w3;
	}
	if (!nm_should_capture(ctx, netns, &dst))
		return 1;

	nm_remember(ctx, &dst);
	if (v4mapped) {
		ctx->user_ip6[3] = bpf_htonl(NM_LOCALHOST4);
	} else {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1);
	}
	ctx->user_port = bpf_htons(nm_outbound_port);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
