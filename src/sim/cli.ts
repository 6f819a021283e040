import { parseArgs } from 'node:util';
import { NodemeshError, describeError } from '../errors';
import { simDown } from './down';
import { serveDnsUntilSignal } from './dns/serve-command';
import { runInPod } from './exec';
import { DEFAULT_SIM_NAME } from './names';
import { loadSimState, tryLoadSimState } from './state';
import { formatStatus, simStatus } from './status';
import { simUp } from './up';

/**
 * `nodemesh sim ...`. The main CLI passes the arguments after `sim` (a leading "sim" is
 * accepted too). Resolves with the process exit code; never calls process.exit.
 */

export const SIM_USAGE = `usage:
  nodemesh sim up [--source DIR] [--name N] [--workload-lifetime D]
                                                build or update a simulation from Kubernetes YAML;
                                                starts its CA (certificates of D, default 24h)
  nodemesh sim down [--name N]                  remove it (also after a crash)
  nodemesh sim status [--name N] [--json]       what exists, per node and pod
  nodemesh sim exec [--name N] POD -- CMD...    run CMD in POD (ns/name, or name in default)
  nodemesh sim dns-serve --zone FILE --listen ADDR... [--port P]
                                                the DNS server \`up\` runs in each node (port 53)

  --name defaults to "${DEFAULT_SIM_NAME}"; --source defaults to the previous up's source.
  Needs root. Every namespace is named nmsim-<name>-*; nothing routes out of them.`;

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

const defaultIo: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

function fail(io: Io, err: unknown): number {
  const code = err instanceof NodemeshError ? err.code : (err as { code?: string }).code;
  io.err(`nodemesh sim: ${describeError(err)}${code ? ` [${code}]` : ''}\n`);
  return 1;
}

export async function simCommand(argv: string[], io: Io = defaultIo): Promise<number> {
  const args = argv[0] === 'sim' ? argv.slice(1) : argv;
  const [command, ...rest] = args;
  try {
    switch (command) {
      case 'up': {
        const { values } = parseArgs({ args: rest, options: { source: { type: 'string', short: 's' }, name: { type: 'string', short: 'n' }, 'workload-lifetime': { type: 'string' } }, strict: true });
        const name = values.name ?? DEFAULT_SIM_NAME;
        const source = values.source ?? tryLoadSimState(name)?.source;
        if (source === undefined) throw new NodemeshError('ERR_NM_USAGE', 'sim up needs --source DIR (a directory of Kubernetes YAML)');
        const state = await simUp({ name, source, ...(values['workload-lifetime'] ? { workloadLifetime: values['workload-lifetime'] } : {}) });
        io.out(`simulation ${state.name} is up: ${state.nodes.length} node(s), ${state.pods.length} pod(s), ${state.services.length} service(s)\n`);
        for (const r of state.rejected) io.err(`not applied: ${r.reason}\n`);
        io.out(formatStatus(await simStatus(name)));
        return 0;
      }
      case 'down': {
        const { values } = parseArgs({ args: rest, options: { name: { type: 'string', short: 'n' } }, strict: true });
        const report = await simDown(values.name ?? DEFAULT_SIM_NAME);
        io.out(`simulation ${values.name ?? DEFAULT_SIM_NAME} removed: ${report.netns.length} namespace(s), ${report.etcNetns.length} /etc/netns dir(s), ${report.cgroups.length} cgroup tree(s)${report.endedPids.length ? `, ended pids ${report.endedPids.join(' ')}` : ''}\n`);
        return 0;
      }
      case 'status': {
        const { values } = parseArgs({ args: rest, options: { name: { type: 'string', short: 'n' }, json: { type: 'boolean' } }, strict: true });
        const status = await simStatus(values.name ?? DEFAULT_SIM_NAME);
        io.out(values.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
        return status.healthy ? 0 : 2;
      }
      case 'exec': {
        const dash = rest.indexOf('--');
        if (dash < 0 || dash === rest.length - 1) throw new NodemeshError('ERR_NM_USAGE', 'sim exec needs POD -- CMD...');
        const { values, positionals } = parseArgs({ args: rest.slice(0, dash), options: { name: { type: 'string', short: 'n' } }, allowPositionals: true, strict: true });
        if (positionals.length !== 1) throw new NodemeshError('ERR_NM_USAGE', 'sim exec needs exactly one POD before --');
        const state = loadSimState(values.name ?? DEFAULT_SIM_NAME);
        return await runInPod(state, positionals[0]!, rest.slice(dash + 1));
      }
      case 'dns-serve': {
        const { values } = parseArgs({ args: rest, options: { zone: { type: 'string' }, listen: { type: 'string', multiple: true }, port: { type: 'string' } }, strict: true });
        if (!values.zone || !values.listen?.length) throw new NodemeshError('ERR_NM_USAGE', 'sim dns-serve needs --zone FILE and at least one --listen ADDR');
        return await serveDnsUntilSignal({ zoneFile: values.zone, addresses: values.listen, ...(values.port !== undefined ? { port: Number(values.port) } : {}) });
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        io.out(`${SIM_USAGE}\n`);
        return command === undefined ? 2 : 0;
      default:
        io.err(`nodemesh sim: unknown command "${command}"\n${SIM_USAGE}\n`);
        return 2;
    }
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      io.err(`nodemesh sim ${command}: ${describeError(err)}\n${SIM_USAGE}\n`);
      return 2;
    }
    return fail(io, err);
  }
}
