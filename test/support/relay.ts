import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP relay in front of an emulator. close() cuts every connection and refuses new ones (the
 * store is gone, at the network level, while the emulator keeps its data); open() brings it back on
 * the same port. `delayMs` holds every chunk that long in each direction (a slow network).
 * `stalled` drops every chunk from then on while the connections stay open: a store that accepts
 * the request and never answers, which only a client-side deadline ends (the stream is unusable
 * afterwards; close the relay).
 */
export class Relay {
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();
  stalled = false;
  constructor(
    readonly port: number,
    private readonly target: { host: string; port: number },
    public delayMs = 0,
  ) {}

  get isOpen(): boolean {
    return this.#server !== undefined;
  }

  open(): Promise<void> {
    const server = createServer((inbound) => {
      const outbound = connect(this.target.port, this.target.host);
      for (const s of [inbound, outbound]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {
          inbound.destroy();
          outbound.destroy();
        });
      }
      const pipe = (from: Socket, to: Socket) =>
        from.on('data', (chunk: Buffer) => {
          if (this.stalled) return;
          if (this.delayMs <= 0) to.write(chunk);
          else setTimeout(() => to.destroyed || to.write(chunk), this.delayMs);
        });
      pipe(inbound, outbound);
      pipe(outbound, inbound);
      inbound.on('end', () => outbound.end());
      outbound.on('end', () => inbound.end());
    });
    this.#server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}
