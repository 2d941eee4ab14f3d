/**
 * The production-latency mode's relay (`npm run bench -- --rtt=8 --jitter=2`): a TCP relay between
 * one server process and the Datastore emulator that holds every chunk half the round trip in each
 * direction (± half the jitter, uniformly; the order of a direction's chunks is kept, as TCP does),
 * and counts the RPCs that pass it: gRPC runs one HTTP/2 stream per call, so every HEADERS frame the
 * client sends on a stream it has not used before is one RPC. This is the count at the wire, the
 * same for every stack whatever its client library does inside.
 *
 * `GET /count` on the control port answers `{"rpcs": N}` with the RPCs of all relays so far, keyed by
 * relay name (the load generator reads it before and after a run, as it reads the server's /__rpc).
 */
import http from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const FRAME_HEADER = 9;
const HEADERS = 0x1;

/**
 * Counts new client-opened streams in the client → server byte stream of one HTTP/2 connection
 * (frames: 3 bytes length, 1 type, 1 flags, 4 stream id; the connection starts with the preface).
 */
export class StreamCounter {
  #buf: Buffer<ArrayBufferLike> = Buffer.alloc(0);
  #prefaceLeft = PREFACE.length;
  #maxStream = 0;
  streams = 0;

  push(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    if (this.#prefaceLeft > 0) {
      const skip = Math.min(this.#prefaceLeft, this.#buf.length);
      this.#prefaceLeft -= skip;
      this.#buf = this.#buf.subarray(skip);
    }
    while (this.#buf.length >= FRAME_HEADER) {
      const length = this.#buf.readUIntBE(0, 3);
      if (this.#buf.length < FRAME_HEADER + length) break;
      const type = this.#buf[3]!;
      const stream = this.#buf.readUInt32BE(5) & 0x7fffffff;
      if (type === HEADERS && stream > this.#maxStream) {
        this.#maxStream = stream;
        this.streams++;
      }
      this.#buf = this.#buf.subarray(FRAME_HEADER + length);
    }
  }
}

export interface LatencyOptions {
  /** Round trip added, ms (half in each direction). */
  rttMs: number;
  /** Spread of the round trip, ms: each direction's delay is rtt/2 ± jitter/2, uniformly. */
  jitterMs: number;
}

/** One relay: listens on a free loopback port and forwards to `target`. */
export class LatencyRelay {
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();
  readonly #counters: StreamCounter[] = [];
  #closedStreams = 0;
  port = 0;

  constructor(
    readonly name: string,
    private readonly target: { host: string; port: number },
    private readonly latency: LatencyOptions,
  ) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** RPCs (HTTP/2 streams opened by the client) so far, over every connection. */
  get rpcs(): number {
    return this.#closedStreams + this.#counters.reduce((a, c) => a + c.streams, 0);
  }

  #delay(): number {
    const { rttMs, jitterMs } = this.latency;
    return Math.max(0, rttMs / 2 + (Math.random() - 0.5) * jitterMs);
  }

  async open(): Promise<void> {
    const server = createServer((inbound) => {
      const outbound = connect(this.target.port, this.target.host);
      inbound.setNoDelay(true);
      outbound.setNoDelay(true);
      const counter = new StreamCounter();
      this.#counters.push(counter);
      for (const s of [inbound, outbound]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {
          inbound.destroy();
          outbound.destroy();
        });
      }
      inbound.once('close', () => {
        const i = this.#counters.indexOf(counter);
        if (i >= 0) {
          this.#counters.splice(i, 1);
          this.#closedStreams += counter.streams;
        }
      });
      const pipe = (from: Socket, to: Socket, count?: StreamCounter) => {
        // One FIFO per direction, drained by one timer: a chunk leaves no earlier than its own delay
        // and never before the chunks that came before it (a reordered HTTP/2 byte stream is a broken one).
        const queue: Array<{ at: number; chunk: Buffer }> = [];
        let timer: NodeJS.Timeout | undefined;
        let last = 0;
        let ended = false;
        const drain = () => {
          timer = undefined;
          const now = performance.now();
          while (queue.length > 0 && queue[0]!.at <= now + 0.5) {
            const { chunk } = queue.shift()!;
            if (!to.destroyed) to.write(chunk);
          }
          if (queue.length > 0) timer = setTimeout(drain, queue[0]!.at - now);
          else if (ended) to.end();
        };
        from.on('data', (chunk: Buffer) => {
          count?.push(chunk);
          last = Math.max(last, performance.now() + this.#delay());
          queue.push({ at: last, chunk });
          timer ??= setTimeout(drain, queue[0]!.at - performance.now());
        });
        from.on('end', () => {
          ended = true;
          if (queue.length === 0 && timer === undefined) to.end();
        });
      };
      pipe(inbound, outbound, counter);
      pipe(outbound, inbound);
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    this.port = typeof address === 'object' && address ? address.port : 0;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}

/** Relays by name, and the control server the load generator asks for their counts. */
export class RelaySet {
  readonly relays = new Map<string, LatencyRelay>();
  #control: http.Server | undefined;
  controlUrl = '';

  constructor(
    private readonly target: string,
    private readonly latency: LatencyOptions,
  ) {}

  /** A relay of its own for `name` (one per server process, so each stack's RPCs are its own). */
  async relay(name: string): Promise<LatencyRelay> {
    const [host, port] = this.target.split(':');
    const relay = new LatencyRelay(name, { host: host!, port: Number(port) }, this.latency);
    await relay.open();
    this.relays.set(name, relay);
    if (!this.#control) {
      this.#control = http.createServer((_req, res) => {
        const counts: Record<string, number> = {};
        for (const [n, r] of this.relays) counts[n] = r.rpcs;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(counts));
      });
      await new Promise<void>((r) => this.#control!.listen(0, '127.0.0.1', () => r()));
      const address = this.#control.address();
      this.controlUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/count`;
    }
    return relay;
  }

  async close(): Promise<void> {
    await Promise.all([...this.relays.values()].map((r) => r.close()));
    const control = this.#control;
    this.#control = undefined;
    if (control) await new Promise<void>((r) => control.close(() => r()));
  }
}
