/**
 * A test app run inside simulated pods (`node dist/test/apps/tcp-echo.js …`):
 *
 *   server PORT [PORT…]   listens on every address; each connection first gets a line
 *                         "peer <address> <port> local <address> <port>\n", then its own
 *                         bytes echoed back. Prints "listening" once all ports are bound.
 *   client HOST PORT MSG  connects, sends MSG, half-closes, prints one JSON line with the
 *                         reply (or the error code) and the local address it used.
 *   hold HOST PORT        a long-lived connection: each stdin line is sent, each reply
 *                         chunk printed; prints "connected" first. For tests that keep a
 *                         connection open across an agent restart.
 *   pingpong HOST PORT N SIZE   N round trips of SIZE bytes over one connection; prints
 *                         JSON with each round trip's time in microseconds.
 *
 * It is the stand-in for an application: plain sockets, no knowledge of the mesh.
 */
import { connect, createServer, type Socket } from 'node:net';

function server(ports: number[]): void {
  let bound = 0;
  for (const port of ports) {
    const srv = createServer({ allowHalfOpen: true }, (s: Socket) => {
      s.write(`peer ${s.remoteAddress} ${s.remotePort} local ${s.localAddress} ${s.localPort}\n`);
      s.pipe(s);
      s.on('error', () => s.destroy());
    });
    srv.listen({ port, host: '::', ipv6Only: false }, () => {
      bound += 1;
      if (bound === ports.length) console.log('listening');
    });
  }
}

function client(host: string, port: number, message: string): void {
  const s = connect({ host, port, allowHalfOpen: true });
  let reply = '';
  const started = Date.now();
  const timer = setTimeout(() => {
    console.log(JSON.stringify({ error: 'ETIMEDOUT' }));
    process.exit(3);
  }, 5000);
  s.setEncoding('utf8');
  s.on('connect', () => s.end(message));
  s.on('data', (d: string) => { reply += d; });
  s.on('end', () => {
    clearTimeout(timer);
    console.log(JSON.stringify({ reply, local: `${s.localAddress} ${s.localPort}`, ms: Date.now() - started }));
    s.destroy();
  });
  s.on('error', (err: NodeJS.ErrnoException) => {
    clearTimeout(timer);
    console.log(JSON.stringify({ error: err.code ?? err.message }));
    process.exitCode = 2;
  });
}

function pingpong(host: string, port: number, rounds: number, size: number): void {
  const s = connect({ host, port, noDelay: true });
  const payload = Buffer.alloc(size, 0x61);
  const times: number[] = [];
  let header = true;
  let pending = 0;
  let started = 0n;
  const send = () => {
    pending = size;
    started = process.hrtime.bigint();
    s.write(payload);
  };
  s.on('data', (chunk: Buffer) => {
    if (header) {
      // The echo server's first line is not part of the ping-pong.
      const nl = chunk.indexOf(10);
      if (nl < 0) return;
      header = false;
      chunk = chunk.subarray(nl + 1);
      if (pending === 0) { send(); }
    }
    pending -= chunk.length;
    if (pending > 0) return;
    times.push(Number(process.hrtime.bigint() - started) / 1000);
    if (times.length >= rounds) {
      console.log(JSON.stringify({ rounds: times.length, micros: times }));
      s.destroy();
      return;
    }
    send();
  });
  s.on('error', (err: NodeJS.ErrnoException) => {
    console.log(JSON.stringify({ error: err.code ?? err.message }));
    process.exitCode = 2;
  });
}

function hold(host: string, port: number): void {
  const s = connect({ host, port });
  s.setEncoding('utf8');
  s.on('connect', () => console.log('connected'));
  s.on('data', (d: string) => process.stdout.write(d));
  s.on('error', (err: NodeJS.ErrnoException) => {
    console.log(`error ${err.code ?? err.message}`);
    process.exit(2);
  });
  s.on('close', () => process.exit(0));
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (line: string) => s.write(line));
  process.stdin.on('end', () => s.end());
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'server') server(args.map(Number));
else if (mode === 'client') client(args[0]!, Number(args[1]), args[2] ?? 'hello');
else if (mode === 'hold') hold(args[0]!, Number(args[1]));
else if (mode === 'pingpong') pingpong(args[0]!, Number(args[1]), Number(args[2] ?? 1000), Number(args[3] ?? 64));
else {
  console.error('usage: tcp-echo server PORT… | client HOST PORT MSG | pingpong HOST PORT N SIZE');
  process.exit(2);
}
