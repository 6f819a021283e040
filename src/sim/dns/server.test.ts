import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeQuery, parseResponse, RCODE_NXDOMAIN, RCODE_REFUSED, TYPE_A } from './message';
import { startDnsServer } from './server';
import { buildDnsZone } from './zone';

function udpAsk(port: number, name: string, type: number): Promise<ReturnType<typeof parseResponse>> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      reject(new Error(`no UDP answer for ${name} within 5 s`));
    }, 5000);
    s.on('message', (msg) => {
      clearTimeout(timer);
      s.close();
      resolve(parseResponse(msg));
    });
    s.send(encodeQuery(42, name, type), port, '127.0.0.1');
  });
}

function tcpAsk(port: number, name: string, type: number): Promise<ReturnType<typeof parseResponse>> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no TCP answer for ${name} within 5 s`));
    }, 5000);
    let got = Buffer.alloc(0);
    const q = encodeQuery(43, name, type);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(q.length);
    sock.write(Buffer.concat([len, q]));
    sock.on('error', reject);
    sock.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) {
        clearTimeout(timer);
        sock.end();
        resolve(parseResponse(got.subarray(2, 2 + got.readUInt16BE(0))));
      }
    });
  });
}

test('the server answers over UDP and TCP, and the next query after the zone file is replaced sees the new zone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nm-dns-'));
  const file = join(dir, 'zone.json');
  const write = (ip: string): void => {
    const zone = buildDnsZone([{ name: 'b', namespace: 'demo', clusterIPs: [ip], ports: [], selector: {} }], [], []);
    writeFileSync(`${file}.tmp`, JSON.stringify(zone));
    renameSync(`${file}.tmp`, file);
  };
  write('10.96.0.20');
  const server = await startDnsServer({ zoneFile: file, addresses: ['127.0.0.1'], port: 0 });
  try {
    const port = server.bound[0]!.port;
    assert.deepEqual((await udpAsk(port, 'b.demo.svc.cluster.local', TYPE_A)).answers, [{ type: TYPE_A, address: '10.96.0.20' }]);
    assert.deepEqual((await tcpAsk(port, 'b.demo.svc.cluster.local', TYPE_A)).answers, [{ type: TYPE_A, address: '10.96.0.20' }]);
    assert.equal((await udpAsk(port, 'gone.demo.svc.cluster.local', TYPE_A)).rcode, RCODE_NXDOMAIN);
    assert.equal((await udpAsk(port, 'example.com', TYPE_A)).rcode, RCODE_REFUSED);
    write('10.96.0.21');
    assert.deepEqual((await udpAsk(port, 'b.demo.svc.cluster.local', TYPE_A)).answers, [{ type: TYPE_A, address: '10.96.0.21' }]);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
