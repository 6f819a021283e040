import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXAMPLE_TOPOLOGY, SimFixture, type AgentHandle, type ClientResult } from './harness';
import { formatStatus } from './status';
import { simStatus } from './status';

/**
 * The demo: a two-node simulated cluster, the agent on node1 capturing pod a1, and
 * connections that show what is captured, what is not, and what release does.
 */

function say(text: string): void {
  console.log(`\n\u001b[1m==> ${text}\u001b[0m`);
}

function show(result: ClientResult): string {
  if (result.error) return `error ${result.error}`;
  const [first] = (result.reply ?? '').split('\n');
  return `${first} (client socket ${result.local})`;
}

export async function runDemo(options: { capture: string; keep: boolean }): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'nodemesh-demo-'));
  const topology = join(dir, 'topology.yaml');
  copyFileSync(EXAMPLE_TOPOLOGY, topology);
  const sim = new SimFixture('demo', dir);
  let agent: AgentHandle | undefined;
  try {
    say('Building the simulated cluster (network namespaces, bridges, cgroups) from deploy/examples/sim/topology.yaml');
    await sim.up();
    console.log(formatStatus(await simStatus('demo')));

    say('Starting a TCP echo app in every pod (it answers with the peer address it sees)');
    for (const pod of ['demo/a1', 'demo/a2', 'demo/b1']) await sim.startEchoServer(pod);

    say(`Starting the node agent on node1 (--capture ${options.capture}); pod a1 is annotated nodemesh.dev/mode: ambient`);
    agent = await sim.startAgent('node1', ['--capture', options.capture]);
    await agent.waitPod('demo/a1', 'enrolled');
    const capture = await agent.capture();
    console.log(`capture back-end: ${capture.backend} (${capture.reason})`);

    say('a1 -> Service b by name (b.demo.svc.cluster.local:80): captured, resolved to b1, which sees a1\'s pod IP');
    console.log(show(await sim.client('demo/a1', 'b.demo.svc.cluster.local', 80, 'hello from a1')));
    say('a1 -> b1 by pod IP (10.244.2.11:8080) on the other node: captured');
    console.log(show(await sim.client('demo/a1', '10.244.2.11', 8080, 'hello again')));
    say('a2 -> b1 (a2 is not enrolled): direct, the agent sees nothing');
    console.log(show(await sim.client('demo/a2', '10.244.2.11', 8080, 'hello from a2')));
    say('a2 -> a1:8080 (plaintext inbound to an enrolled pod): steered to the proxy on 15006, delivered from 127.0.0.6');
    console.log(show(await sim.client('demo/a2', '10.244.1.11', 8080, 'inbound')));

    say("The agent's view: `nodemesh status --instance sim-demo-node1` and its connection log");
    for (const p of await agent.pods()) console.log(`${p.key.padEnd(12)} ${p.status.padEnd(9)} ${p.ips.join(',')}`);
    for (const [k, v] of Object.entries((await agent.capture()).counters)) if (v > 0) console.log(`  ${k} ${v}`);
    for (const c of await agent.connections()) {
      console.log(`  ${c.direction.padEnd(8)} ${c.pod.padEnd(8)} ${c.source.padEnd(22)} original ${c.originalDestination.padEnd(22)} -> ${(c.upstream ?? '-').padEnd(22)} ${c.resolution ?? ''} ${c.result}`);
    }

    say('Releasing a1 (annotation set to off): its connections go direct at once, no restart');
    writeFileSync(topology, readFileSync(EXAMPLE_TOPOLOGY, 'utf8').replace('nodemesh.dev/mode: ambient', 'nodemesh.dev/mode: off'));
    await agent.waitPod('demo/a1', 'absent');
    console.log(show(await sim.client('demo/a1', '10.244.2.11', 8080, 'released')));
    return 0;
  } finally {
    if (options.keep) {
      say('Leaving the simulation up (--keep): `nodemesh sim down --name demo` removes it');
    } else {
      say('Tearing down: sim down removes every namespace, cgroup, pinned BPF object and rule it made');
      await sim.close();
      console.log('done');
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
