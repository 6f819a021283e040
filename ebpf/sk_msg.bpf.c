// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sk_msg: the optional accelerator. Attached to the pair sockhash; for a message sent on
 * one end of an app<->proxy loopback connection, it moves the bytes straight into the
 * receive queue of the other end, skipping the loopback TCP/IP stack.
 * When the peer is not in the sockhash the message takes the normal path: this program
 * never drops data. Needs kernel 5.15+ (bpf_get_netns_cookie in sk_msg).
 */
#include "maps.h"

SEC("sk_msg")
int nm_sk_msg(struct sk_msg_md *msg)
{
	struct nm_sock_key peer = {
		.netns_cookie = bpf_get_netns_cookie(msg),
		.family = msg->family,
		/* The peer's local end is our remote end, and the other way round. */
		.local_port = (__u16)bpf_ntohl(msg->remote_port),
		.remote_port = (__u16)msg->local_port,
	};

	if (msg->family == NM_AF_INET) {
		nm_addr_from_ip4(peer.local_addr, msg->remote_ip4);
		nm_addr_from_ip4(peer.remote_addr, msg->local_ip4);
	} else {
		__u32 r[4] = { msg->remote_ip6[0], msg->remote_ip6[1], msg->remote_ip6[2], msg->remote_ip6[3] };
		__u32 l[4] = { msg->local_ip6[0], msg->local_ip6[1], msg->local_ip6[2], msg->local_ip6[3] };
		nm_addr_from_ip6(peer.local_addr, r);
		nm_addr_from_ip6(peer.remote_addr, l);
	}
	if (bpf_msg_redirect_hash(msg, &nm_sock_pairs_v1, &peer, BPF_F_INGRESS) == SK_PASS)
		nm_count(NM_STAT_MSG_REDIRECTED);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
