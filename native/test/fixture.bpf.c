// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Test fixture for src/datapath/bpf.test.ts, compiled by the test itself:
 *   clang -O2 -g -target bpf -c native/test/fixture.bpf.c -o fixture.bpf.o
 * A pinned hash map, a per-CPU counter array, a sockhash, const volatile and .bss
 * globals, and one trivial program per attach point the tests link.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_test_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} nm_test_percpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} nm_test_socks SEC(".maps");

/* Set by the test before load; connect4 counts connects to this port. */
const volatile __u32 nm_test_port = 1;
/* .bss: read back by the test through the object's .bss map. */
__u64 nm_test_port_hits = 0;

SEC("cgroup/connect4")
int nm_test_connect4(struct bpf_sock_addr *ctx)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&nm_test_percpu, &key);

	if (count)
		*count += 1;
	if (ctx->user_port == bpf_htons((__u16)nm_test_port))
		__sync_fetch_and_add(&nm_test_port_hits, 1);
	return 1;
}

SEC("sk_lookup")
int nm_test_lookup(struct bpf_sk_lookup *ctx)
{
	return SK_PASS;
}

SEC("sk_msg")
int nm_test_msg(struct sk_msg_md *msg)
{
	return SK_PASS;
}
