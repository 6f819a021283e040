import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { NodemeshError, describeError } from '../errors';
import { logger } from '../log';
import type { NativeBinding } from './native-binding';

/**
 * Loading the native addon (native/, built by `npm run build` to
 * build/Release/nodemesh_native.node in the package root).
 *
 * This module runs from src/datapath (ts-node, editors) and from dist/src/datapath (the
 * compiled agent), so the package root is two or three levels up; both are tried, the
 * one matching the current layout first. Only src/datapath may import this module.
 */

export const ADDON_FILE = path.join('build', 'Release', 'nodemesh_native.node');

const log = logger('datapath');

/** Every function the addon must export: checked at load, so a stale build fails clearly. */
const NATIVE_FUNCTIONS = {
  objectOpen: true, objectSetGlobal: true, objectLoad: true, objectProgramFd: true, objectMapFd: true, objectClose: true,
  linkCreate: true, linkDetach: true, linkInfo: true, progAttach: true, progDetach: true, progInfo: true,
  objPin: true, objGet: true,
  mapInfo: true, mapLookup: true, mapUpdate: true, mapDelete: true, mapNextKey: true, possibleCpus: true,
  netnsOpen: true, socketInNetns: true, netnsCookie: true,
  setMark: true, setTransparent: true, setReusePort: true, getOriginalDst: true, socketCookie: true,
  localAddress: true, peerAddress: true, close: true,
  cgroupOpen: true, cgroupId: true,
  statfsType: true, probeProgType: true, probeMapType: true,
  fdChannelSend: true, fdChannelRecv: true, unixConnect: true, dupFd: true, setNonBlocking: true,
} satisfies Record<keyof NativeBinding, true>;

export const NATIVE_FUNCTION_NAMES = Object.keys(NATIVE_FUNCTIONS) as (keyof NativeBinding)[];

/**
 * The paths the addon is looked for at, in order, given the directory this module runs
 * from (`<root>/src/datapath` or `<root>/dist/src/datapath`).
 */
export function addonCandidates(moduleDir: string = __dirname): string[] {
  const dir = path.resolve(moduleDir);
  const twoUp = path.resolve(dir, '..', '..'); // <root> when running from src/datapath
  const threeUp = path.resolve(dir, '..', '..', '..'); // <root> when running from dist/src/datapath
  const fromDist = path.basename(twoUp) === 'dist';
  const roots = fromDist ? [threeUp, twoUp] : [twoUp, threeUp];
  return [...new Set(roots.map((root) => path.join(root, ADDON_FILE)))];
}

/**
 * Loads the addon from the first candidate that exists. Throws ERR_NM_ADDON_MISSING
 * (listing every path tried) when none does, ERR_NM_ADDON_LOAD_FAILED when the file
 * exists but cannot be loaded, ERR_NM_ADDON_STALE when it lacks functions.
 */
export function loadNative(candidates: readonly string[] = addonCandidates(), load: (file: string) => unknown = require): NativeBinding {
  for (const file of candidates) {
    if (!existsSync(file)) continue;
    let binding: unknown;
    try {
      binding = load(file);
    } catch (err) {
      throw new NodemeshError('ERR_NM_ADDON_LOAD_FAILED', `the native addon ${file} exists but could not be loaded: ${describeError(err)}`, {
        hint: 'rebuild it for this Node.js with `npm run build` (libbpf, libelf and zlib must be installed: scripts/setup.sh)',
        cause: err,
        details: { path: file },
      });
    }
    const missing = NATIVE_FUNCTION_NAMES.filter((name) => typeof (binding as Record<string, unknown> | null)?.[name] !== 'function');
    if (missing.length > 0) {
      throw new NodemeshError('ERR_NM_ADDON_STALE', `the native addon ${file} lacks ${missing.join(', ')}`, {
        hint: 'it was built from older sources: run `npm run build`',
        details: { path: file, missing },
      });
    }
    log.debug({ path: file }, 'native addon loaded');
    return binding as NativeBinding;
  }
  throw new NodemeshError('ERR_NM_ADDON_MISSING', `the native addon nodemesh_native.node was not found; tried: ${candidates.join(', ')}`, {
    hint: 'run `npm run build` in the package root to compile it (node-gyp rebuild)',
    details: { tried: [...candidates] },
  });
}

let loaded: NativeBinding | undefined;

/** The addon, loaded on first use. */
export function getNative(): NativeBinding {
  loaded ??= loadNative();
  return loaded;
}

/** The addon, loaded lazily on the first property access (importing this module never fails). */
export const native: NativeBinding = new Proxy({} as NativeBinding, {
  get(_target, property) {
    return Reflect.get(getNative(), property);
  },
  has(_target, property) {
    return Reflect.has(getNative(), property);
  },
  ownKeys() {
    return Reflect.ownKeys(getNative());
  },
  getOwnPropertyDescriptor(_target, property) {
    const descriptor = Reflect.getOwnPropertyDescriptor(getNative(), property);
    return descriptor === undefined ? undefined : { ...descriptor, configurable: true };
  },
});
