import { compareEntries, RequestView, type Entry } from './matchers';
import type { RequestFacts, RouteMatch, RouteProtocol } from './types';

/**
 * The runtime route table: per Service, protocol, port and audience (the Service's own
 * routes, or a client namespace's GAMMA consumer routes), the entries in precedence
 * order. Built once per configuration snapshot from parsed RouteSpecs; read by every request.
 */

export interface ServiceRoutes {
  /** The rule that handles the request, or undefined (no rule matches: the spec's 404). */
  match(req: RequestFacts): RouteMatch | undefined;
  /** The entries in precedence order, for debug output. */
  describe(): string[];
}

/** A Service parentRef, resolved. */
export interface Parent {
  serviceKey: string;
  /** undefined: every port of the Service. */
  port: number | undefined;
  /** The route's namespace when it differs from the Service's (a GAMMA consumer route). */
  consumer: string | undefined;
}

/** One route, parsed: what the table needs of it. */
export interface RouteSpec {
  routeKey: string;
  protocol: RouteProtocol;
  entries: Entry[];
  parents: Parent[];
}

class SortedRoutes implements ServiceRoutes {
  readonly entries: readonly Entry[];

  constructor(entries: Iterable<Entry>) {
    this.entries = Object.freeze([...new Set(entries)].sort(compareEntries));
  }

  match(req: RequestFacts): RouteMatch | undefined {
    const view = new RequestView(req);
    for (const entry of this.entries) if (entry.test(view)) return entry.result;
    return undefined;
  }

  describe(): string[] {
    return this.entries.map((e) => `${e.result.routeKey} rules[${e.ruleIndex}] matches[${e.matchIndex}]: ${e.describe}`);
  }
}

/** The routes of one Service for one audience: those for every port, and per port. */
class PortRoutes {
  private readonly all: SortedRoutes | undefined;
  private readonly byPort = new Map<number, SortedRoutes>();

  constructor(allPorts: Entry[], perPort: Map<number, Entry[]>) {
    this.all = allPorts.length > 0 ? new SortedRoutes(allPorts) : undefined;
    for (const [port, entries] of perPort) this.byPort.set(port, new SortedRoutes([...allPorts, ...entries]));
  }

  get(port: number): SortedRoutes | undefined {
    return this.byPort.get(port) ?? this.all;
  }

  ports(): Array<number | '*'> {
    return [...(this.all ? ['*' as const] : []), ...[...this.byPort.keys()].sort((a, b) => a - b)];
  }

  routes(port: number | '*'): SortedRoutes | undefined {
    return port === '*' ? this.all : this.byPort.get(port);
  }
}

interface Pending {
  allPorts: Entry[];
  perPort: Map<number, Entry[]>;
}

/** One row of RouteTable.describe(), for /debug/config. */
export interface RouteTableRow {
  protocol: RouteProtocol;
  service: string;
  port: number | '*';
  /** The client namespace of GAMMA consumer routes; undefined for the Service's own (producer) routes. */
  consumerNamespace?: string;
  entries: string[];
}

export class RouteTable {
  /** Routes attached to at least one Service. */
  readonly size: number;
  /** `${protocol} ${serviceKey}` -> audience ('' = producer, else consumer namespace) -> routes. */
  private readonly index = new Map<string, Map<string, PortRoutes>>();

  /** @internal built by compileRoutes(). */
  constructor(routes: readonly RouteSpec[]) {
    const pending = new Map<string, Map<string, Pending>>();
    for (const route of routes) {
      const protocol = route.protocol;
      for (const parent of route.parents) {
        const key = `${protocol} ${parent.serviceKey}`;
        let audiences = pending.get(key);
        if (!audiences) pending.set(key, (audiences = new Map()));
        const audience = parent.consumer ?? '';
        let p = audiences.get(audience);
        if (!p) audiences.set(audience, (p = { allPorts: [], perPort: new Map() }));
        if (parent.port === undefined) p.allPorts.push(...route.entries);
        else {
          let list = p.perPort.get(parent.port);
          if (!list) p.perPort.set(parent.port, (list = []));
          list.push(...route.entries);
        }
      }
    }
    for (const [key, audiences] of pending) {
      const built = new Map<string, PortRoutes>();
      for (const [audience, p] of audiences) built.set(audience, new PortRoutes(p.allPorts, p.perPort));
      this.index.set(key, built);
    }
    this.size = routes.length;
    Object.freeze(this);
  }

  static empty(): RouteTable {
    return new RouteTable([]);
  }

  /**
   * The routes for requests to a Service (namespace/name) on a port. Routes whose
   * parentRef names no port apply to every port; a port-specific parentRef only to its
   * port. `clientNamespace` is the namespace of the calling pod: GAMMA consumer routes
   * (a route in the client's namespace attached to a Service of another namespace) take
   * the place of the Service's own routes for that client; without it only the Service's
   * own (producer) routes apply. undefined: no route attaches, route as plain L4/L7 to
   * the Service.
   */
  forService(serviceKey: string, port: number, protocol: RouteProtocol, clientNamespace?: string): ServiceRoutes | undefined {
    const audiences = this.index.get(`${protocol} ${serviceKey}`);
    if (!audiences) return undefined;
    if (clientNamespace !== undefined) {
      const consumer = audiences.get(clientNamespace)?.get(port);
      if (consumer) return consumer;
    }
    return audiences.get('')?.get(port);
  }

  /** Every attachment with its entries in precedence order. */
  describe(): RouteTableRow[] {
    const rows: RouteTableRow[] = [];
    for (const key of [...this.index.keys()].sort()) {
      const space = key.indexOf(' ');
      const protocol = key.slice(0, space) as RouteProtocol;
      const service = key.slice(space + 1);
      const audiences = this.index.get(key)!;
      for (const audience of [...audiences.keys()].sort()) {
        const routes = audiences.get(audience)!;
        for (const port of routes.ports()) {
          const row: RouteTableRow = { protocol, service, port, entries: routes.routes(port)!.describe() };
          if (audience !== '') row.consumerNamespace = audience;
          rows.push(row);
        }
      }
    }
    return rows;
  }
}
