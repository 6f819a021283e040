#!/usr/bin/env node
import { NodemeshError, describeError } from '../errors';

const USAGE = `nodemesh: a per-node service mesh

usage: nodemesh <command> [flags]

commands:
  doctor    probe this node for eBPF and iptables capture and say which back-end the agent would use
  agent     run the node agent (capture + node proxy) against a YAML source
  status    show what a running agent captures (pods, back-end, counters)
  authz     check: what a running agent's authorization policies decide for a call, and why
  sim       the local node simulator: up | down | status | exec
  demo      a walk-through on the simulator: capture, direct, inbound, release
  sidecar   run the proxy inside one pod (sidecar mode); sidecar-init installs its iptables rules
  inject    add the sidecar to Kubernetes manifests; webhook serves the same as an admission webhook
  identity  the mesh's CA: serve | token | rotate-root
  bench     latency, CPU and memory of every mode (direct, sidecar, ambient, Envoy) on the simulator

Run \`nodemesh <command> --help\` for a command's flags.`;

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {
  doctor: async () => (await import('./doctor-command')).doctorCommand,
  agent: async () => (await import('./agent-command')).agentCommand,
  status: async () => (await import('./status-command')).statusCommand,
  authz: async () => (await import('./authz-command')).authzCommand,
  sim: async () => (await import('./sim-command')).simCommand,
  demo: async () => (await import('./demo-command')).demoCommand,
  sidecar: async () => (await import('./sidecar-command')).sidecarCommand,
  'sidecar-init': async () => (await import('./sidecar-command')).sidecarInitCommand,
  inject: async () => (await import('./inject-command')).injectCommand,
  webhook: async () => (await import('./inject-command')).webhookCommand,
  bench: async () => (await import('./bench-command')).benchCommand,
  identity: async () => (await import('./identity-command')).identityCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name ? 0 : 2;
  }
  const load = commands[name];
  if (!load) {
    console.error(`nodemesh: unknown command '${name}'\n\n${USAGE}`);
    return 2;
  }
  return (await load())(rest);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    // A finished command exits even if a library left a handle open: a daemon that has
    // stopped must not linger with its pid file gone.
    (code) => { process.exit(code); },
    (err: unknown) => {
      const code = err instanceof NodemeshError ? ` [${err.code}]` : '';
      console.error(`nodemesh: ${describeError(err)}${code}`);
      process.exit(1);
    },
  );
}
