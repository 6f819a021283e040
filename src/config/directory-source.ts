import { sameSourceResult, type ConfigSource, type SourceResult } from './config-source';
import { watch as fsWatch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { NodemeshError, describeError, hasCode } from '../errors';
import { logger } from '../log';
import { parseK8sYaml, type RawObject } from './k8s-yaml';
import type { CoreKind } from './core-kind';
import { ObjectConverter } from './objects';
import { rejection, type RejectedObject } from './validation';

/**
 * The embedded configuration source: a directory (or one file) of Kubernetes YAML, the
 * same objects `kubectl apply -f DIR` would take. Every *.yaml, *.yml and *.json file at
 * the top of the directory is read, in name order (hidden files are skipped: editors
 * keep their swap files there). A file that stops parsing keeps its last good objects
 * and is reported in `rejected` until it is fixed.
 */


export interface DirectorySourceOptions {
  /** Quiet time after a change before re-reading (ms, default 100). */
  debounceMs?: number;
  /**
   * Interval of the poll that backs fs.watch up (ms). Default 2000 while fs.watch works,
   * and 500 where it does not (some network and overlay filesystems).
   */
  pollIntervalMs?: number;
  /** The kinds converted into the mesh model (the registry's, src/kinds); default CORE_KINDS. */
  kinds?: readonly CoreKind[];
}

const EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

interface FileState {
  mtimeMs: number;
  size: number;
  /** Objects of the last version that parsed. */
  objects: RawObject[];
  /** Document-level problems of that version. */
  problems: RejectedObject[];
  /** Set while the current content does not parse. */
  syntaxError?: string;
}

export class DirectorySource implements ConfigSource {
  readonly path: string;
  private readonly log = logger('config', { source: 'directory' });
  private readonly files = new Map<string, FileState>();
  private readonly debounceMs: number;
  private readonly pollIntervalMs: number | undefined;
  private watcher: FSWatcher | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> = Promise.resolve();
  private lastResult: SourceResult | undefined;
  /** Objects of files that did not change keep their converted values (see ObjectConverter). */
  private readonly converter: ObjectConverter;
  private closed = false;

  constructor(path: string, options: DirectorySourceOptions = {}) {
    this.path = resolve(path);
    this.debounceMs = options.debounceMs ?? 100;
    this.pollIntervalMs = options.pollIntervalMs;
    this.converter = new ObjectConverter(options.kinds);
  }

  /** Reads the files (re-reading only the ones whose size or mtime changed). */
  load(): Promise<SourceResult> {
    return this.read(undefined);
  }

  /**
   * load(), where `changed` (absolute paths), when given, are the only files known ones
   * may differ in (fs.watch named them): the others are not even looked at, so a change
   * costs its own files, not a stat of every file (the poll still checks them all).
   */
  private async read(changed: ReadonlySet<string> | undefined): Promise<SourceResult> {
    const paths = await this.listFiles();
    const rejected: RejectedObject[] = [];
    const present = new Set(paths);
    for (const known of [...this.files.keys()]) if (!present.has(known)) this.files.delete(known);
    for (const file of paths) {
      if (changed !== undefined && !changed.has(file) && this.files.has(file)) continue;
      let info;
      try {
        info = await stat(file);
      } catch (err) {
        if (hasCode(err, 'ENOENT')) continue; // removed while we listed
        throw err;
      }
      const previous = this.files.get(file);
      if (previous && previous.mtimeMs === info.mtimeMs && previous.size === info.size) continue;
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        if (hasCode(err, 'ENOENT')) continue;
        rejected.push(rejection(file, '(file)', `cannot be read: ${describeError(err)}`));
        continue;
      }
      try {
        const parsed = parseK8sYaml(text, file);
        this.files.set(file, {
          mtimeMs: info.mtimeMs,
          size: info.size,
          objects: parsed.objects,
          problems: parsed.problems.map((p) => ({ file: p.file, object: p.object, reason: p.reason, code: 'ERR_NM_CONFIG_INVALID' })),
        });
      } catch (err) {
        const message = describeError(err);
        if (previous) {
          this.files.set(file, { ...previous, mtimeMs: info.mtimeMs, size: info.size, syntaxError: message });
        } else {
          this.files.set(file, { mtimeMs: info.mtimeMs, size: info.size, objects: [], problems: [], syntaxError: message });
        }
      }
    }
    const raws: RawObject[] = [];
    for (const file of paths) {
      const state = this.files.get(file);
      if (!state) continue;
      if (state.syntaxError !== undefined) {
        const kept = state.objects.length;
        rejected.push({
          file,
          object: '(file)',
          reason: `${state.syntaxError}; ${kept > 0 ? `keeping the ${kept} object(s) of its last good version` : 'no earlier good version: none of its objects apply'}`,
          code: 'ERR_NM_CONFIG_SYNTAX',
        });
      }
      rejected.push(...state.problems);
      raws.push(...state.objects);
    }
    const converted = this.converter.convert(raws);
    rejected.push(...converted.rejected);
    const result = { ...converted, rejected, files: paths };
    this.lastResult = result;
    return result;
  }

  /**
   * Calls onChange with a fresh result whenever the files change (debounced). It also
   * reports the current result at the start, unless load() already returned that same
   * result (the usual `await load()` then `watch()`). A change that leaves the result
   * identical is not reported.
   */
  watch(onChange: (result: SourceResult) => void, onError: (err: unknown) => void = (err) => this.log.error({ err: describeError(err) }, 'reading the configuration failed')): void {
    if (this.closed) throw new NodemeshError('ERR_NM_SOURCE_CLOSED', 'this DirectorySource is closed');
    if (this.watcher || this.pollTimer) throw new NodemeshError('ERR_NM_SOURCE_WATCHING', 'this DirectorySource is already being watched');
    // The files fs.watch named since the last read; undefined: look at every file.
    let pending: Set<string> | undefined;
    const reload = (): void => {
      this.reloading = this.reloading.then(async () => {
        if (this.closed) return;
        const changed = pending;
        pending = new Set();
        try {
          const before = this.lastResult;
          const result = await this.read(before === undefined ? undefined : changed);
          if ((before !== undefined && sameSourceResult(before, result)) || this.closed) return;
          onChange(result);
        } catch (err) {
          onError(err);
        }
      });
    };
    const schedule = (file?: string): void => {
      if (this.closed) return;
      if (file === undefined) pending = undefined;
      else pending?.add(file);
      if (this.debounceTimer) clearTimeout(this.debounceTimer);
      this.debounceTimer = setTimeout(() => {
        this.debounceTimer = undefined;
        reload();
      }, this.debounceMs);
    };
    // Watch the directory (the parent, for a single file): editors replace files by
    // renaming, which a watch on the file itself would not survive.
    let watchWorks = false;
    void stat(this.path)
      .then((info) => info.isDirectory())
      .catch(() => true)
      .then((isDir) => {
        if (this.closed) return;
        const target = isDir ? this.path : dirname(this.path);
        const only = isDir ? undefined : basename(this.path);
        try {
          this.watcher = fsWatch(target, { persistent: false }, (_event, filename) => {
            if (only !== undefined && filename !== null && filename !== only) return;
            schedule(filename === null ? undefined : join(target, filename));
          });
          this.watcher.on('error', (err) => {
            this.log.warn({ err: describeError(err) }, 'fs.watch failed; polling instead');
            this.watcher?.close();
            this.watcher = undefined;
            this.startPoll(this.pollIntervalMs ?? 500, schedule);
          });
          watchWorks = true;
        } catch (err) {
          this.log.warn({ err: describeError(err), path: target }, 'fs.watch is not available here; polling instead');
        }
        this.startPoll(this.pollIntervalMs ?? (watchWorks ? 2000 : 500), schedule);
      });
    reload();
  }

  private startPoll(intervalMs: number, schedule: () => void): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    // load() only re-reads files whose size or mtime changed, so a poll costs a few stats.
    this.pollTimer = setInterval(() => schedule(), intervalMs);
    this.pollTimer.unref();
  }

  /** Stops watching. Pending reloads finish, but report nothing. */
  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = undefined;
  }

  private async listFiles(): Promise<string[]> {
    let info;
    try {
      info = await stat(this.path);
    } catch (err) {
      if (hasCode(err, 'ENOENT')) {
        throw new NodemeshError('ERR_NM_SOURCE_MISSING', `configuration path ${this.path} does not exist`, {
          hint: 'pass a directory of Kubernetes YAML files (or one file)',
          cause: err,
        });
      }
      throw err;
    }
    if (!info.isDirectory()) return [this.path];
    const entries = await readdir(this.path, { withFileTypes: true });
    return entries
      .filter((e) => !e.name.startsWith('.') && EXTENSIONS.has(extname(e.name).toLowerCase()) && (e.isFile() || e.isSymbolicLink()))
      .map((e) => join(this.path, e.name))
      .sort();
  }
}
