/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Includes, constants and small address helpers shared by every nodemesh BPF program. */
#ifndef NODEMESH_COMMON_H
#define NODEMESH_COMMON_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "nodemesh.h"

#define NM_SOCK_STREAM 1
#define NM_IPPROTO_TCP 6
#define NM_SOL_IP 0
#define NM_SOL_IPV6 41
#define NM_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h */
#define NM_IP6T_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv6/ip6_tables.h */

#define NM_LOOPBACK_NET4 0x7f000000u /* 127.0.0.0/8, host order */
#define NM_LOOPBACK_MASK4 0xff000000u
#define NM_LOCALHOST4 0x7f000001u /* 127.0.0.1: where connect4 sends captured sockets */

/* Settings: const volatile globals that user space sets between open and load (see
 * src/capture/ebpf/settings.ts). The values here are the defaults of DESIGN.md. */
const volatile __u16 nm_outbound_port = NM_PORT_OUTBOUND;
const volatile __u16 nm_inbound_port = NM_PORT_INBOUND;
const volatile __u16 nm_tunnel_port = NM_PORT_TUNNEL;
const volatile __u16 nm_probe_port = NM_PORT_PROBE;
const volatile __u32 nm_proxy_mark = NM_PROXY_MARK;
/* sk_msg acceleration: sockops only fills the pair sockhash when this is set. */
const volatile __u8 nm_sk_msg_enabled = 0;

/* Reads a 32-bit context field exactly here. Without the empty asm, clang may sink loads
 * into branches and merge them into one load through an offset ctx/socket pointer, which
 * the verifier refuses ("dereference of modified ctx ptr"). */
#define nm_read32(field)                           \
	({                                         \
		__u32 __nm_v = (field);            \
		asm volatile("" : "+r"(__nm_v));   \
		__nm_v;                            \
	})

/* Writes an IPv4 address (network order) as IPv4-mapped IPv6 into a 16-byte key. */
static __always_inline void nm_addr_from_ip4(__u8 addr[16], __u32 ip4_be)
{
	__u32 *w = (__u32 *)addr;
	w[0] = 0;
	w[1] = 0;
	w[2] = bpf_htonl(0x0000ffff);
	w[3] = ip4_be;
}

static __always_inline void nm_addr_from_ip6(__u8 addr[16], const __u32 ip6_be[4])
{
	__u32 *w = (__u32 *)addr;
	w[0] = ip6_be[0];
	w[1] = ip6_be[1];
	w[2] = ip6_be[2];
	w[3] = ip6_be[3];
}

static __always_inline int nm_ip6_is_v4mapped(const __u32 w0, const __u32 w1, const __u32 w2)
{
	return w0 == 0 && w1 == 0 && w2 == bpf_htonl(0x0000ffff);
}

static __always_inline int nm_ip4_is_loopback(__u32 ip4_be)
{
	return (bpf_ntohl(ip4_be) & NM_LOOPBACK_MASK4) == NM_LOOPBACK_NET4;
}

static __always_inline int nm_ip6_is_loopback(__u32 w0, __u32 w1, __u32 w2, __u32 w3)
{
	return w0 == 0 && w1 == 0 && w2 == 0 && w3 == bpf_htonl(1);
}

#endif /* NODEMESH_COMMON_H */
