import { closeFds, type FdChannel } from '../../datapath/fd-channel';
import { NodemeshError } from '../../errors';

/**
 * The next message of the dialogue, which must be of `type`: a peer that hung up or says
 * something else fails the hand-over (the caller rolls back what it did).
 */
export async function expectMessage<M extends { type: string }, T extends M['type']>(channel: FdChannel, type: T, timeoutMs: number): Promise<{ message: Extract<M, { type: T }>; fds: number[] }> {
  const got = await channel.recv<M>(timeoutMs);
  if (!got) {
    throw new NodemeshError('ERR_NM_HANDOVER_PEER_GONE', `the other agent closed the hand-over before '${type}'`, {
      hint: 'it exited or was killed half-way; this agent keeps serving what it holds',
    });
  }
  if (got.message.type !== type) {
    closeFds(got.fds);
    const reason = (got.message as { reason?: string }).reason;
    throw new NodemeshError('ERR_NM_HANDOVER_PROTOCOL', `expected '${type}' from the other agent, got '${got.message.type}'${reason ? `: ${reason}` : ''}`, {
      hint: 'both agents must run nodemesh versions with the same hand-over protocol',
    });
  }
  return got as { message: Extract<M, { type: T }>; fds: number[] };
}
