/**
 * Reporter, and why nothing is counted twice.
 *
 * Istio counts every request once per *reporter*: the client side's proxy reports
 * `reporter="source"`, the server side's proxy `reporter="destination"`; dashboards always
 * select one reporter (Kiali mostly `destination`, falling back to `source` for
 * destinations outside the mesh), so a request seen by both ends is never summed twice.
 *
 * nodemesh has one proxy per node, and that proxy may see both ends of a request (both pods
 * on the node). The rule that keeps Istio's "once per reporter" true is:
 *
 *   **The reporter is decided by the leg, never by where the pods are.** A leg accepted on a
 *   pod's *outbound* listener (15001, the app's own connection) reports `source`; a leg
 *   accepted on a pod's *inbound* listeners (15006 plaintext, 15008 tunnel) reports
 *   `destination`. Each leg records each request or connection exactly once, with its one
 *   reporter (`reporterForLeg`).
 *
 * A same-node request crosses the proxy once: the outbound leg hands it over in-process,
 * connecting into the server pod's namespace itself rather than through that pod's inbound
 * listener. That one pass plays both roles, so it records once with `source` and once with
 * `destination` (the outbound pipeline per attempt that reached the pod, as a destination
 * proxy sees each retry; a TCP relay once per connection): one sample per reporter,
 * exactly as two sidecars would give. A leg must not also report the other side "because
 * the other pod is local too" in any other case: that is the double count this rule
 * forbids.
 * A request to a destination outside the mesh has only a `source` sample; one from a client
 * outside the mesh only a `destination` sample, as in Istio.
 */

export type Reporter = 'source' | 'destination';

/** Which listener accepted the leg; decides the reporter (see the module comment). */
export function reporterForLeg(leg: 'outbound' | 'inbound'): Reporter {
  return leg === 'outbound' ? 'source' : 'destination';
}
