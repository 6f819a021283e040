import type { ConfigSource } from './config-source';
import type { SourceResult } from './config-source';

/** A configuration source for tests: `load` gives the first result, `onChange` pushes later ones. */
export class FakeSource implements ConfigSource {
  onChange: ((r: SourceResult) => void) | undefined;
  closed = false;
  constructor(private readonly first: SourceResult) {}
  async load(): Promise<SourceResult> { return this.first; }
  watch(onChange: (r: SourceResult) => void): void { this.onChange = onChange; }
  close(): void { this.closed = true; }
}
