// What the data-path bench's consumers and rules agree on: addresses (all in
// 198.18.0.0/15, used only inside the bench's namespaces), port and marks.
export const DATAPATH = {
  /** The host under test: host 0's service and cluster address. */
  self: '198.18.0.1',
  /** Host 1, where rewritten packets go; the host under test blackholes it. */
  peer: '198.18.0.2',
  /** The same for the IPv6 variant (2001:2::/48, inside the bench's namespaces only). */
  self6: '2001:2::1',
  peer6: '2001:2::2',
  servicePort: 80,
  /** P(origin 0, port index 0) = peerPortBase: what the rewrite puts in the destination port. */
  peerPortBase: 20000,
  forwardMark: 0x100,
  serveMark: 0x200,
} as const;
