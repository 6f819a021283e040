import type { Leadership } from '../leadership';

/** A leader gate a test flips by hand. */
export class ManualLeadership implements Leadership {
  private leading = false;
  private readonly listeners = new Set<(leading: boolean) => void>();

  get isLeader(): boolean {
    return this.leading;
  }

  onChange(listener: (leading: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  set(leading: boolean): void {
    this.leading = leading;
    for (const l of this.listeners) l(leading);
  }
}
