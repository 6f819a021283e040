/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The contract between nodemesh's BPF programs and user space.
 *
 * Every struct here is a map key or value. User space (src/datapath/bpf-layout.ts)
 * encodes the same layouts byte for byte, so a change here must change there too, and a
 * map whose layout changes gets a new versioned name (the _v1 suffix) so that an agent
 * upgrade never reads a pinned map of the old shape.
 *
 * Conventions:
 *  - Addresses are 16 bytes. IPv4 is stored IPv4-mapped (::ffff:a.b.c.d) so one key shape
 *    serves both families; `family` says which one the socket really uses.
 *  - Ports are in host byte order everywhere in these structs.
 */
#ifndef NODEMESH_H
#define NODEMESH_H

#define NM_AF_INET 2
#define NM_AF_INET6 10

/* Ports from DESIGN.md; the programs read them from const volatile globals that
 * user space sets before load, these are only the defaults. */
#define NM_PORT_OUTBOUND 15001
#define NM_PORT_INBOUND 15006
#define NM_PORT_TUNNEL 15008
#define NM_PORT_PROBE 15009 /* capture self-test: never served by anything but the proxy */
#define NM_PORT_ADMIN 15020
#define NM_PORT_HEALTH 15021

/* The mark every socket of the proxy carries (SO_MARK), so no hook captures it again. */
#define NM_PROXY_MARK 0x4e4d /* "NM" */

/* The source address the inbound path uses to reach the app; capture always skips it. */
#define NM_INBOUND_PASSTHROUGH_IP4 0x7f000006 /* 127.0.0.6, host order */

/* nm_pod_config.flags */
#define NM_POD_CAPTURE_OUTBOUND (1u << 0)
#define NM_POD_CAPTURE_INBOUND (1u << 1)

/* nm_port_key.direction */
#define NM_DIR_OUTBOUND 0
#define NM_DIR_INBOUND 1

/* Index of each counter in nm_stats_v1 (a per-CPU array). */
enum nm_stat {
	NM_STAT_CONNECT_REDIRECTED = 0, /* connect4/6 rewrote to the outbound listener */
	NM_STAT_CONNECT_NO_LISTENER = 1, /* enrolled, but no live listener: left direct (fail-open) */
	NM_STAT_CONNECT_EXCLUDED = 2, /* enrolled, but port/CIDR/loopback/mark excluded */
	NM_STAT_ORIGDST_STORED = 3, /* sockops moved an original destination to the pair map */
	NM_STAT_GETSOCKOPT_ANSWERED = 4, /* SO_ORIGINAL_DST answered from the pair map */
	NM_STAT_LOOKUP_STEERED = 5, /* sk_lookup steered an inbound connection to the proxy */
	NM_STAT_SOCKHASH_INSERTED = 6, /* sockops put a loopback socket into the pair sockhash */
	NM_STAT_MSG_REDIRECTED = 7, /* sk_msg moved a message straight to the paired socket */
	NM_STAT_MAX = 8,
};

struct nm_pod_config {
	__u32 flags; /* NM_POD_CAPTURE_* */
	__u32 reserved;
};

/* nm_out_listen_v1 key: the outbound listener of one pod network namespace. */
struct nm_listener_key {
	__u64 netns_cookie;
	__u32 family; /* NM_AF_INET or NM_AF_INET6: one listener per family */
	__u32 pad;
};

/* nm_in_listen_v1 key: a pod IP, whose inbound connections go to its 15006 listener.
 * Pod IPs are unique on a node, which is why no netns cookie is needed here. */
struct nm_ip_key {
	__u32 family;
	__u8 addr[16];
};

/* An original destination: what the app asked connect() for. */
struct nm_orig_dst {
	__u32 family;
	__u16 port;
	__u16 pad;
	__u8 addr[16];
};

/* nm_orig_by_pair_v1 key: the app socket's local address as the proxy sees it as the
 * peer of the accepted socket, qualified by the pod's namespace (every pod has a
 * 127.0.0.1). */
struct nm_pair_key {
	__u64 netns_cookie;
	__u32 family;
	__u16 port;
	__u16 pad;
	__u8 addr[16];
};

/* nm_sock_pairs_v1 key: one end of a loopback connection, for sk_msg to find its peer
 * by swapping local and remote. */
struct nm_sock_key {
	__u64 netns_cookie;
	__u32 family;
	__u16 local_port;
	__u16 remote_port;
	__u8 local_addr[16];
	__u8 remote_addr[16];
};

struct nm_port_key {
	__u16 port;
	__u8 direction; /* NM_DIR_* */
	__u8 pad;
};

/* nm_excluded_cidrs_v1 key (LPM trie): prefixlen counts bits of the 16-byte address, so
 * an IPv4 /8 is stored as prefixlen 96 + 8 over the IPv4-mapped address. */
struct nm_cidr_key {
	__u32 prefixlen;
	__u8 addr[16];
};

#endif /* NODEMESH_H */
