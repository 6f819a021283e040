/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every nodemesh map. Each is pinned by name under the agent's pin root, so the programs
 * of every object share one instance and a restarted agent adopts them unchanged.
 * A layout change needs a new _vN name (see nodemesh.h).
 */
#ifndef NODEMESH_MAPS_H
#define NODEMESH_MAPS_H

#include "common.h"

#define NM_MAX_PODS 4096
#define NM_MAX_INFLIGHT_CONNECTS 65536
#define NM_MAX_CAPTURED_CONNS 262144

/* Enrolled pod namespaces. Written by the agent on enroll/release; read by connect4/6. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NM_MAX_PODS);
	__type(key, __u64); /* netns cookie */
	__type(value, struct nm_pod_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_enrolled_v1 SEC(".maps");

/* The outbound listener of each enrolled namespace. Written by the agent; read by
 * connect4/6 as a liveness check: a closed socket leaves a sockhash by itself, so a dead
 * agent means no entry and connections go direct instead of failing (fail-open). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, NM_MAX_PODS * 2);
	__type(key, struct nm_listener_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_out_listen_v1 SEC(".maps");

/* The inbound (15006) listener per pod IP. Written by the agent; read by sk_lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, NM_MAX_PODS * 2);
	__type(key, struct nm_ip_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_in_listen_v1 SEC(".maps");

/* Original destination by socket cookie, from connect() until the connection is
 * established. Written by connect4/6; read and deleted by sockops. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NM_MAX_INFLIGHT_CONNECTS);
	__type(key, __u64);
	__type(value, struct nm_orig_dst);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_orig_by_cookie_v1 SEC(".maps");

/* Original destination by the app socket's address, once established. Written by
 * sockops; read by the getsockopt program when the proxy asks for SO_ORIGINAL_DST. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NM_MAX_CAPTURED_CONNS);
	__type(key, struct nm_pair_key);
	__type(value, struct nm_orig_dst);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_orig_by_pair_v1 SEC(".maps");

/* Both ends of every app<->proxy loopback connection, when sk_msg acceleration is on.
 * Written by sockops; read by sk_msg to find the peer socket. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, NM_MAX_CAPTURED_CONNS);
	__type(key, struct nm_sock_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_sock_pairs_v1 SEC(".maps");

/* Ports never captured, per direction. Written by the agent; read by connect4/6 and
 * sk_lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct nm_port_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_excluded_ports_v1 SEC(".maps");

/* Destination CIDRs never captured (IPv4 as IPv4-mapped). Written by the agent; read by
 * connect4/6. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct nm_cidr_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_excluded_cidrs_v1 SEC(".maps");

/* Counters (enum nm_stat). Written by every program; read by the agent's metrics. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NM_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_stats_v1 SEC(".maps");

static __always_inline void nm_count(enum nm_stat stat)
{
	__u32 key = stat;
	__u64 *value = bpf_map_lookup_elem(&nm_stats_v1, &key);
	if (value)
		*value += 1;
}

static __always_inline int nm_port_excluded(__u16 port, __u8 direction)
{
	struct nm_port_key key = { .port = port, .direction = direction };
	return bpf_map_lookup_elem(&nm_excluded_ports_v1, &key) != NULL;
}

static __always_inline int nm_cidr_excluded(const __u8 addr[16])
{
	struct nm_cidr_key key = { .prefixlen = 128 };
	__builtin_memcpy(key.addr, addr, 16);
	return bpf_map_lookup_elem(&nm_excluded_cidrs_v1, &key) != NULL;
}

#endif /* NODEMESH_MAPS_H */
