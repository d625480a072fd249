// The only file that talks to etcd (through the etcd3 client, over gRPC):
// the few calls membership needs, with plain values in and out. Every unary
// call has a deadline, so an etcd that does not answer (a partition, a host
// that drops packets) fails the call instead of hanging the source. The
// client's own retry and circuit-breaker policies are off except for trying
// the next endpoint once per endpoint: the source retries, with its own
// backoff, and says so (lib/membership/etcd.ts).
import { Etcd3, isRecoverableError, type IKeyValue, type IOptions } from 'etcd3';
import { handleWhen, noop, retry } from 'cockatiel';
import type { RawKv } from './records';

export interface StoreOptions {
  endpoints: string[];
  /** A unary call not answered within this fails. */
  callTimeoutMs: number;
  /** TLS: the CA that signed the servers' certificates, and this client's certificate and key (mutual TLS). */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  auth?: { username: string; password: string };
}

export interface Listing {
  kvs: RawKv[];
  /** The store's revision the listing was read at: a watch from revision + 1 misses nothing. */
  revision: string;
}

/** Something that happened under a watched prefix. */
export interface Change {
  type: 'put' | 'delete';
  kv: RawKv;
}

/** A long-lived call (keepalives, a watch): end() lets it go. */
export interface Stream {
  end(): void;
}

const raw = (kv: IKeyValue): RawKv => ({
  key: kv.key.toString(),
  value: kv.value.toString(),
  lease: String(kv.lease ?? '0'),
  createRevision: String(kv.create_revision ?? '0'),
});

export class EtcdStore {
  private readonly client: Etcd3;

  constructor(o: StoreOptions) {
    const options: IOptions = {
      hosts: o.endpoints,
      dialTimeout: o.callTimeoutMs,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + o.callTimeoutMs }),
      faultHandling: {
        host: () => noop,
        global: retry(handleWhen(isRecoverableError), { maxAttempts: o.endpoints.length - 1 }),
      },
    };
    // etcd3 names the CA "rootCertificate"; none (null, or no tls at all with https:// endpoints): the system's CAs.
    if (o.tls?.ca || o.tls?.cert) options.credentials = { rootCertificate: o.tls.ca ?? (null as unknown as Buffer), privateKey: o.tls.key, certChain: o.tls.cert };
    if (o.auth) options.auth = o.auth;
    this.client = new Etcd3(options);
  }

  async list(prefix: string): Promise<Listing> {
    const res = await this.client.getAll().prefix(prefix).exec();
    return { kvs: res.kvs.map(raw), revision: String(res.header.revision) };
  }

  /** Puts `key` only if it does not exist; true if it was put. */
  async createIfAbsent(key: string, value: string, lease: string): Promise<boolean> {
    const res = await this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(value).lease(lease)).commit();
    return res.succeeded;
  }

  /** Puts `key` only if it is attached to `lease` (this host's own record); true if it was put. */
  async replaceOwn(key: string, value: string, lease: string): Promise<boolean> {
    const res = await this.client.if(key, 'Lease', '==', lease).then(this.client.put(key).value(value).lease(lease)).commit();
    return res.succeeded;
  }

  async grant(ttlS: number): Promise<string> {
    const res = await this.client.leaseClient.leaseGrant({ TTL: ttlS, ID: 0 });
    return String(res.ID);
  }

  /** Seconds the lease has left; 0 or less when it expired or never existed. */
  async timeToLive(lease: string): Promise<number> {
    const res = await this.client.leaseClient.leaseTimeToLive({ ID: lease });
    return Number(res.TTL);
  }

  async revoke(lease: string): Promise<void> {
    await this.client.leaseClient.leaseRevoke({ ID: lease });
  }

  /**
   * Keeps `lease` alive: one keepalive every `everyMs` on one stream. `onAnswer`
   * gets the TTL etcd granted again (0: the lease is gone); `onError` the end
   * of the stream, whatever ended it.
   */
  async keepAlive(lease: string, everyMs: number, onAnswer: (ttl: number) => void, onError: (err: Error) => void): Promise<Stream> {
    const stream = await this.client.leaseClient.leaseKeepAlive();
    // After end() nothing is reported: the stream's last events are our own doing.
    let open = true;
    const send = (): void => stream.write({ ID: lease });
    const timer = setInterval(send, everyMs);
    stream.on('data', (res) => open && onAnswer(Number(res.TTL)));
    stream.on('error', (err: Error) => open && onError(err));
    stream.on('end', () => open && onError(new Error('etcd ended the keepalive stream')));
    send();
    return {
      end: () => {
        open = false;
        clearInterval(timer);
        stream.end();
      },
    };
  }

  /** Watches every key under `prefix` from `fromRevision` on; `onChanges` gets each batch in order. */
  async watch(prefix: string, fromRevision: string, onChanges: (changes: Change[]) => void, onError: (err: Error) => void): Promise<Stream> {
    const stream = await this.client.watchClient.watch();
    const end = Buffer.from(prefix);
    // The end of a prefix range: the prefix with its last byte one higher.
    end[end.length - 1]!++;
    let open = true;
    stream.on('data', (res) => {
      if (!open) return;
      if (res.canceled) return onError(new Error(`etcd cancelled the watch: ${res.cancel_reason || 'no reason given'}${res.compact_revision !== '0' ? ` (compacted at revision ${res.compact_revision})` : ''}`));
      const changes = (res.events ?? []).map((ev): Change => ({ type: String(ev.type).toLowerCase() === 'delete' ? 'delete' : 'put', kv: raw(ev.kv) }));
      if (changes.length) onChanges(changes);
    });
    stream.on('error', (err: Error) => open && onError(err));
    stream.on('end', () => open && onError(new Error('etcd ended the watch stream')));
    stream.write({ create_request: { key: Buffer.from(prefix), range_end: end, start_revision: fromRevision } });
    return {
      end: () => {
        open = false;
        stream.cancel();
      },
    };
  }

  close(): void {
    this.client.close();
  }
}
