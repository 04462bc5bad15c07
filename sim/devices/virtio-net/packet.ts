// A packet between the external peer and the guest.
export interface Packet {
  readonly id: number;
  readonly kind: 'echo-request' | 'echo-reply' | 'data';
  /** Echo sequence number (echo packets). */
  readonly seq: number;
  /** When the peer sent the echo request it belongs to. */
  readonly sentNs: number;
  /** Flow-arrow id from the guest's kick to the handler that served it. */
  flow: number;
}
