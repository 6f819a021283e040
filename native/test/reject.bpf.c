// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Test fixture the verifier must reject (a map value dereferenced without a NULL
 * check), so that src/datapath/bpf.test.ts can check that objectLoad's error carries
 * the verifier log. A hash map: array lookups with a constant in-range key are known
 * non-NULL to recent verifiers.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nm_test_reject_map SEC(".maps");

SEC("cgroup/connect4")
int nm_test_reject(struct bpf_sock_addr *ctx)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&nm_test_reject_map, &key);

	if (*value == 7)
		return 0;
	return 1;
}
