/**
 * The deployment files hold together, checked without a cluster or a Docker engine:
 * - deploy/kubernetes: known kinds; the Deployment's selector, pod labels, Service and
 *   ServiceMonitor agree; ports and probes match the ConfigMap's control.listen; the embedded
 *   pgferry.yaml parses with pgferry's own parser given the env the pod gets from the Secret;
 *   Recreate, resources, non-root; the PrometheusRule carries deploy/prometheus/alerts.yml.
 * - deploy/docker-compose.yml: the pgferry service's config parses with its environment, is reached
 *   where prometheus.yml scrapes it, maps tables the seed creates and the publication covers.
 * - Dockerfile: HEALTHCHECK on /healthz, a non-root USER, an init in ENTRYPOINT, the config path
 *   both deployments mount, and a .dockerignore that lets in what the build copies.
 */
import { RUNTIME_ENV, RUNTIME_NODE_OPTIONS } from "../../src/cli/heapPolicy.js";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { parseConfig, parseListenAddress, type Config, type Env } from "../../src/config/index.js";
import { dockerfile } from "../harness/dockerfile.js";

const ROOT = resolve(import.meta.dirname, "../..");
const DEPLOY = join(ROOT, "deploy");
const K8S = join(DEPLOY, "kubernetes");
const read = (path: string) => readFileSync(path, "utf8");

// ───────────────────────────── shapes (only the fields the checks read) ─────────────────────────────

type Labels = Record<string, string>;
interface K8sObject {
  file: string;
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; labels?: Labels };
}
interface Probe { httpGet?: { path?: string; port?: string | number } }
interface Container {
  name: string;
  image?: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; runAsNonRoot?: boolean; capabilities?: { drop?: string[] } };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface Deployment extends K8sObject {
  spec: {
    replicas?: number;
    strategy?: { type?: string };
    selector: { matchLabels: Labels };
    template: {
      metadata: { labels: Labels };
      spec: { securityContext?: { runAsNonRoot?: boolean; runAsUser?: number }; containers: Container[]; volumes?: { name: string; configMap?: { name: string } }[] };
    };
  };
}
interface Service extends K8sObject { spec: { selector: Labels; ports: { name?: string; port: number; targetPort?: string | number }[] } }
interface ConfigMap extends K8sObject { data: Record<string, string> }
interface Secret extends K8sObject { stringData?: Record<string, string> }
interface ServiceMonitor extends K8sObject { spec: { jobLabel?: string; selector: { matchLabels: Labels }; endpoints: { port?: string; path?: string }[] } }
interface Rule { alert?: string; record?: string; expr: string | number }
interface RuleGroups { groups: { name: string; rules: Rule[] }[] }
interface PrometheusRule extends K8sObject { spec: RuleGroups }
interface Kustomization extends K8sObject { resources?: string[]; images?: { name: string; newName?: string; newTag?: string }[] }

const KNOWN_KINDS: Record<string, readonly string[]> = {
  v1: ["ConfigMap", "Secret", "Service"],
  "apps/v1": ["Deployment"],
  "monitoring.coreos.com/v1": ["ServiceMonitor", "PrometheusRule"],
  "kustomize.config.k8s.io/v1beta1": ["Kustomization"],
};

function loadManifests(): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const file of readdirSync(K8S).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    for (const doc of parseAllDocuments(read(join(K8S, file)))) {
      expect(doc.errors.map((e) => e.message), file).toEqual([]);
      const value = doc.toJS() as Omit<K8sObject, "file"> | null;
      if (value !== null) objects.push({ ...value, file });
    }
  }
  return objects;
}

const manifests = loadManifests();

function one<T extends K8sObject>(kind: string): T {
  const found = manifests.filter((m) => m.kind === kind);
  expect(found.map((m) => m.file), `exactly one ${kind}`).toHaveLength(1);
  return found[0] as T;
}

function includesLabels(labels: Labels | undefined, selector: Labels): boolean {
  return Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** `${VAR}` references of a config text that have no `:-default` (`$${` is a literal). */
function requiredEnvRefs(text: string): string[] {
  return [...text.matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}/g)].filter((m) => m[2] === undefined).map((m) => m[1]!);
}

/** Stand-in values for secrets, shaped like the real ones. */
function placeholder(name: string): string {
  return name.endsWith("_URL") ? `postgres://pgferry:placeholder@${name.toLowerCase().replace(/_/g, "-")}.invalid:5432/app` : "placeholder-token-0123456789abcdef";
}

function controlPort(config: Config): number {
  const address = parseListenAddress(config.control.listen);
  expect(address, `control.listen ${config.control.listen}`).toBeDefined();
  return address!.port;
}

// ───────────────────────────── Kubernetes ─────────────────────────────

describe("deploy/kubernetes", () => {
  const deployment = one<Deployment>("Deployment");
  const service = one<Service>("Service");
  const configMap = one<ConfigMap>("ConfigMap");
  const secret = one<Secret>("Secret");
  const container = deployment.spec.template.spec.containers[0]!;
  const podLabels = deployment.spec.template.metadata.labels;

  /** The Secret keys the container's env refers to, as the pod's environment would hold them. */
  const podEnv = (): Env => {
    const env: Env = {};
    for (const variable of container.env ?? []) {
      const ref = variable.valueFrom?.secretKeyRef;
      if (ref) env[variable.name] = placeholder(ref.key);
      else if (variable.value !== undefined) env[variable.name] = variable.value;
    }
    return env;
  };
  const configFile = () => {
    const mount = container.volumeMounts?.find((m) => m.mountPath === "/etc/pgferry");
    const volume = deployment.spec.template.spec.volumes?.find((v) => v.name === mount?.name);
    expect(volume?.configMap?.name, "a ConfigMap volume mounted at /etc/pgferry").toBe(configMap.metadata?.name);
    return configMap.data["pgferry.yaml"] ?? "";
  };
  const config = () => parseConfig(configFile(), "configmap.yaml#pgferry.yaml", podEnv());
  const resolvePort = (port: string | number | undefined) => (typeof port === "number" ? port : container.ports?.find((p) => p.name === port)?.containerPort);

  it("has only known apiVersion/kind pairs, each named", () => {
    expect(manifests.length).toBeGreaterThanOrEqual(7);
    for (const m of manifests) {
      expect(KNOWN_KINDS[m.apiVersion ?? ""], `${m.file}: apiVersion ${m.apiVersion}`).toBeDefined();
      expect(KNOWN_KINDS[m.apiVersion!], `${m.file}: kind ${m.kind}`).toContain(m.kind);
      if (m.kind !== "Kustomization") expect(m.metadata?.name, `${m.file}: metadata.name`).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
  });

  it("lists every manifest but the example Secret in kustomization.yaml, and names the container's image", () => {
    const kustomization = one<Kustomization>("Kustomization");
    const expected = [...new Set(manifests.map((m) => m.file))].filter((f) => f !== kustomization.file && f !== secret.file);
    expect([...(kustomization.resources ?? [])].sort()).toEqual(expected.sort());
    expect(secret.file).toMatch(/example/);
    expect(kustomization.images?.map((i) => i.name)).toContain(container.image?.split(":")[0]);
  });

  it("runs one replica with Recreate, so two pods never hold the slot", () => {
    expect(deployment.spec.replicas).toBe(1);
    expect(deployment.spec.strategy?.type).toBe("Recreate");
    expect(deployment.spec.template.spec.containers).toHaveLength(1);
  });

  it("selects its own pods, and the Service selects the same pods", () => {
    expect(includesLabels(podLabels, deployment.spec.selector.matchLabels)).toBe(true);
    expect(includesLabels(podLabels, service.spec.selector)).toBe(true);
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
  });

  it("parses the ConfigMap's pgferry.yaml with pgferry's parser, every ${VAR} given by the Secret", () => {
    const text = configFile();
    const env = podEnv();
    for (const name of requiredEnvRefs(text)) expect(Object.keys(env), `\${${name}} in the config`).toContain(name);
    for (const variable of container.env ?? []) {
      const ref = variable.valueFrom?.secretKeyRef;
      if (!ref) continue;
      expect(ref.name, `${variable.name}: the Secret's name`).toBe(secret.metadata?.name);
      expect(Object.keys(secret.stringData ?? {}), `${variable.name}: a key of the example Secret`).toContain(ref.key);
    }
    const parsed = config();
    expect(parsed.control.adminToken, "listening off loopback needs the admin token").toBeDefined();
    expect(container.args).toEqual(["run", "--config", "/etc/pgferry/pgferry.yaml"]);
  });

  it("exposes the control port of the config on the container, the Service and both probes", () => {
    const port = controlPort(config());
    expect(parseListenAddress(config().control.listen)?.host, "reachable from the kubelet and Prometheus").toBe("0.0.0.0");
    expect(container.ports?.find((p) => p.name === "http")?.containerPort).toBe(port);
    const servicePort = service.spec.ports.find((p) => p.name === "http");
    expect(servicePort?.port).toBe(port);
    expect(resolvePort(servicePort?.targetPort)).toBe(port);
    expect(container.livenessProbe?.httpGet?.path).toBe("/healthz");
    expect(resolvePort(container.livenessProbe?.httpGet?.port)).toBe(port);
    expect(container.readinessProbe?.httpGet?.path).toBe("/readyz");
    expect(resolvePort(container.readinessProbe?.httpGet?.port)).toBe(port);
  });

  it("sets resources and runs non-root on a read-only root filesystem with no capabilities", () => {
    const { requests, limits } = container.resources ?? {};
    expect(requests?.cpu).toBeDefined();
    expect(requests?.memory).toBeDefined();
    expect(limits?.memory).toBeDefined();
    const mebibytes = (q: string) => Number(/^(\d+)Mi$/.exec(q)?.[1] ?? NaN);
    expect(mebibytes(limits!.memory!)).toBeGreaterThanOrEqual(mebibytes(requests!.memory!));
    const pod = deployment.spec.template.spec.securityContext;
    expect(pod?.runAsNonRoot).toBe(true);
    expect(pod?.runAsUser).toBeGreaterThan(0);
    expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
    expect(container.securityContext?.capabilities?.drop).toContain("ALL");
  });

  it("has a ServiceMonitor that selects the Service by its labels and port name, as job \"pgferry\"", () => {
    const monitor = one<ServiceMonitor>("ServiceMonitor");
    expect(includesLabels(service.metadata?.labels, monitor.spec.selector.matchLabels)).toBe(true);
    expect(monitor.spec.endpoints.length).toBeGreaterThan(0);
    const portNames = service.spec.ports.map((p) => p.name);
    for (const endpoint of monitor.spec.endpoints) {
      expect(portNames).toContain(endpoint.port);
      expect(endpoint.path ?? "/metrics").toBe("/metrics");
    }
    // The job label is the Service's name unless jobLabel names a Service label; the rules select job="pgferry".
    const job = monitor.spec.jobLabel ? service.metadata?.labels?.[monitor.spec.jobLabel] : service.metadata?.name;
    expect(job).toBe("pgferry");
  });

  it("has a PrometheusRule with the alerts of deploy/prometheus/alerts.yml, same expressions", () => {
    const rule = one<PrometheusRule>("PrometheusRule");
    const normalise = (expr: string | number) => String(expr).replace(/\s+/g, " ").trim();
    const exprs = (groups: RuleGroups) => new Map(groups.groups.flatMap((g) => g.rules).filter((r) => r.alert).map((r) => [r.alert!, normalise(r.expr)]));
    const ours = exprs(rule.spec);
    expect([...ours.values()].some((e) => e.includes('up{job="pgferry"}'))).toBe(true);
    const file = parse(read(join(DEPLOY, "prometheus/alerts.yml"))) as RuleGroups;
    expect(Object.fromEntries(ours)).toEqual(Object.fromEntries(exprs(file)));
  });
});

// ───────────────────────────── Docker Compose ─────────────────────────────

interface ComposeService {
  image?: string;
  build?: { context?: string; dockerfile?: string } | string;
  command?: string[] | string;
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test?: string[] | string };
  depends_on?: Record<string, { condition?: string }>;
}
interface Compose { services: Record<string, ComposeService> }

/** Compose's own interpolation, with every variable unset: `${X:-default}` → default. */
function composeDefaults(value: string): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}/g, (_m, _name: string, fallback: string | undefined) => fallback ?? "");
}

describe("deploy/docker-compose.yml", () => {
  const compose = parse(read(join(DEPLOY, "docker-compose.yml"))) as Compose;
  const services = compose.services;
  const pgferry = services.pgferry!;
  const mountOf = (service: ComposeService, containerPath: string) => {
    const volume = service.volumes?.find((v) => v.split(":")[1] === containerPath);
    expect(volume, `a volume mounted at ${containerPath}`).toBeDefined();
    return join(DEPLOY, volume!.split(":")[0]!);
  };
  const env = (): Env => Object.fromEntries(Object.entries(pgferry.environment ?? {}).map(([k, v]) => [k, composeDefaults(String(v))]));
  const configText = () => read(mountOf(pgferry, "/etc/pgferry/pgferry.yaml"));
  const config = () => parseConfig(configText(), "deploy/compose/pgferry.yaml", env());
  const initScripts = (service: string) => {
    const dir = mountOf(services[service]!, "/docker-entrypoint-initdb.d");
    return readdirSync(dir).sort().map((f) => read(join(dir, f))).join("\n");
  };

  it("has the source, target, pgferry, Prometheus and Grafana services", () => {
    expect(Object.keys(services).sort()).toEqual(["grafana", "pgferry", "prometheus", "source", "target"]);
    for (const db of ["source", "target"]) expect(services[db]!.image).toMatch(/^pgvector\/pgvector:[\d.]+-pg1[5-9]/);
    expect(String(services.source!.command)).toContain("wal_level=logical");
  });

  it("builds pgferry from the Dockerfile and mounts a config that parses with its environment", () => {
    expect(pgferry.build).toMatchObject({ context: "..", dockerfile: "Dockerfile" });
    const text = configText();
    for (const name of requiredEnvRefs(text)) expect(Object.keys(env()), `\${${name}} in the config`).toContain(name);
    const parsed = config();
    expect(parsed.control.adminToken).toBeDefined();
    expect(parseListenAddress(parsed.control.listen)?.host).toBe("0.0.0.0");
  });

  it("publishes the control port that prometheus.yml scrapes as pgferry:<port>", () => {
    const port = controlPort(config());
    expect(pgferry.ports?.map((p) => Number(p.split(":").at(-1)))).toContain(port);
    const prometheus = parse(read(mountOf(services.prometheus!, "/etc/prometheus/prometheus.yml"))) as {
      rule_files?: string[];
      scrape_configs: { job_name: string; static_configs?: { targets: string[] }[] }[];
    };
    const job = prometheus.scrape_configs.find((c) => c.job_name === "pgferry");
    expect(job?.static_configs?.flatMap((s) => s.targets)).toContain(`pgferry:${port}`);
    for (const file of prometheus.rule_files ?? []) mountOf(services.prometheus!, `/etc/prometheus/${file}`);
  });

  it("mounts only files that exist and waits only on services with health checks", () => {
    for (const [name, service] of Object.entries(services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(":")[0]!;
        if (source.startsWith(".")) expect(() => statSync(join(DEPLOY, source)), `${name}: ${source}`).not.toThrow();
      }
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect(Object.keys(services)).toContain(dependency);
        if (condition === "service_healthy") expect(services[dependency]!.healthcheck, `${name} waits on ${dependency}'s health`).toBeDefined();
      }
    }
    expect(pgferry.depends_on).toMatchObject({ source: { condition: "service_healthy" }, target: { condition: "service_healthy" } });
  });

  it("maps tables the seed creates, and has docs/privileges.sql grant them and publish the sources", () => {
    const parsed = config();
    const created = (sql: string, id: string) => {
      const [schema, table] = id.split(".");
      return new RegExp(`CREATE TABLE ${schema === "public" ? `(public\\.)?${table}` : `${schema}\\.${table}`} \\(`).test(sql);
    };
    /** The psql variables the role script passes to docs/privileges.sql. */
    const privilegesVars = (sql: string) => {
      expect(sql).toMatch(/-f \/pgferry\/privileges\.sql/);
      return Object.fromEntries([...sql.matchAll(/-v (\w+)=('[^']*'|\S+)/g)].map((m) => [m[1]!, m[2]!.replace(/^'|'$/g, "")]));
    };
    const list = (text: string | undefined) => (text ?? "").split(",").map((t) => t.trim()).sort();
    const sources = [...new Set(parsed.tables.map((t) => t.from))].sort();
    const targets = [...new Set(parsed.tables.map((t) => t.to))].sort();
    const sourceSql = initScripts("source");
    const targetSql = initScripts("target");
    for (const id of sources) expect(created(sourceSql, id), `source creates ${id}`).toBe(true);
    for (const id of targets) expect(created(targetSql, id), `target creates ${id}`).toBe(true);
    for (const db of ["source", "target"]) expect(mountOf(services[db]!, "/pgferry/privileges.sql")).toBe(join(ROOT, "docs/privileges.sql"));
    // The role does not own the tables: the publication must already be exactly what pgferry wants.
    const source = privilegesVars(sourceSql);
    expect(source).toMatchObject({ side: "source", publication: parsed.source.publication });
    expect(list(source.tables)).toEqual(sources);
    const target = privilegesVars(targetSql);
    expect(target.side).toBe("target");
    expect(list(target.tables)).toEqual(targets);
    expect(env().SOURCE_URL).toMatch(/^postgres:\/\/pgferry_source:/);
    expect(env().TARGET_URL).toMatch(/^postgres:\/\/pgferry_target:/);
  });
});

// ───────────────────────────── Dockerfile ─────────────────────────────


const GLOB_TOKENS = new Map([["**", ".*"], ["*", "[^/]*"], ["?", "[^/]"]]);

/** Docker's .dockerignore rule: the last pattern matching the path or one of its parents decides. */
function dockerignored(path: string, patterns: readonly string[]): boolean {
  const parts = path.split("/");
  let ignored = false;
  for (const raw of patterns) {
    const negated = raw.startsWith("!");
    const glob = (negated ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, "");
    const source = glob
      .split(/(\*\*|\*|\?)/)
      .map((token) => GLOB_TOKENS.get(token) ?? token.replace(/[.+^${}()|[\]\\]/g, "\\$&"))
      .join("");
    const regex = new RegExp(`^${source}$`);
    if (parts.some((_, i) => regex.test(parts.slice(0, i + 1).join("/")))) ignored = !negated;
  }
  return ignored;
}

function filesUnder(path: string): string[] {
  if (!statSync(join(ROOT, path)).isDirectory()) return [path];
  return readdirSync(join(ROOT, path)).flatMap((entry) => filesUnder(`${path}/${entry}`));
}

describe("Dockerfile", () => {
  const instructions = dockerfile(read(join(ROOT, "Dockerfile")));
  const lastFrom = instructions.map((i) => i.keyword).lastIndexOf("FROM");
  const runtime = instructions.slice(lastFrom);
  const last = (keyword: string) => runtime.filter((i) => i.keyword === keyword).at(-1)?.args;
  const execForm = (keyword: string) => JSON.parse(last(keyword) ?? "null") as string[] | null;

  it("builds in stages on a slim Node LTS image that package.json's engines accept", () => {
    const froms = instructions.filter((i) => i.keyword === "FROM");
    expect(froms.length).toBeGreaterThanOrEqual(2);
    const image = /^node:(\d+)-[a-z]+-slim\b/.exec(runtime[0]!.args);
    expect(image, runtime[0]!.args).not.toBeNull();
    const major = Number(image![1]);
    expect(major % 2, "an even (LTS) Node major").toBe(0);
    const engines = (JSON.parse(read(join(ROOT, "package.json"))) as { engines: { node: string } }).engines.node;
    expect(major).toBeGreaterThanOrEqual(Number(/>=\s*(\d+)/.exec(engines)?.[1]));
    expect(runtime.some((i) => i.keyword === "RUN" && /npm ci\b.*--omit=dev/.test(i.args)), "production dependencies only").toBe(true);
  });

  it("runs as a non-root user under an init, with a HEALTHCHECK on /healthz", () => {
    const user = last("USER") ?? "root";
    expect(user.split(":")[0]).not.toMatch(/^(root|0)$/);
    const entrypoint = execForm("ENTRYPOINT");
    expect(entrypoint?.[0]).toMatch(/^(\/usr\/bin\/)?(tini|dumb-init)$/);
    expect(entrypoint?.slice(-2)).toEqual(["node", "/app/dist/cli/bin.js"]);
    const healthcheck = last("HEALTHCHECK") ?? "";
    expect(healthcheck).toMatch(/\bCMD \[/);
    const url = /PGFERRY_HEALTHCHECK_URL=(\S+)/.exec(runtime.filter((i) => i.keyword === "ENV").map((i) => i.args).join("\n"))?.[1];
    expect(healthcheck.includes("/healthz") || (healthcheck.includes("PGFERRY_HEALTHCHECK_URL") && url?.endsWith("/healthz"))).toBe(true);
    expect(last("EXPOSE")).toBe(String(new URL(url ?? "http://127.0.0.1:9187").port));
  });

  it("starts node with the young generation pgferry's heap policy expects", () => {
    // NAME=value, the value up to the end (it may hold "=" itself, as NODE_OPTIONS does).
    const env = Object.fromEntries(runtime.filter((i) => i.keyword === "ENV").map((i) => [i.args.slice(0, i.args.indexOf("=")), i.args.slice(i.args.indexOf("=") + 1)]));
    for (const [name, value] of Object.entries({ NODE_OPTIONS: RUNTIME_NODE_OPTIONS, ...RUNTIME_ENV })) expect(env[name], name).toBe(value);
  });

  it("reads the config where Compose and Kubernetes mount it", () => {
    expect(execForm("CMD")).toEqual(["run", "--config", "/etc/pgferry/pgferry.yaml"]);
    const compose = parse(read(join(DEPLOY, "docker-compose.yml"))) as Compose;
    expect(compose.services.pgferry?.volumes?.some((v) => v.split(":")[1] === "/etc/pgferry/pgferry.yaml")).toBe(true);
  });

  it("has a .dockerignore that keeps out local state but lets in everything the build copies", () => {
    const patterns = read(join(ROOT, ".dockerignore")).split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
    const copied = instructions
      .filter((i) => i.keyword === "COPY" && !i.args.includes("--from="))
      .flatMap((i) => i.args.split(/\s+/).filter((w) => !w.startsWith("--")).slice(0, -1));
    expect(copied).toEqual(expect.arrayContaining(["package.json", "package-lock.json", "src", "config"]));
    for (const file of copied.flatMap(filesUnder)) expect(dockerignored(file, patterns), file).toBe(false);
    // The developer tools (demo, bench, throwaway clusters) and their build stay out of the image too.
    const local = ["node_modules/pg/package.json", "dist/cli/bin.js", ".git/HEAD", "test/unit/config.test.ts", "bench/results/x.json"];
    for (const path of [...local, "tools/demo/main.ts", "tools/embedded/localCluster.ts", "dist-tools/tools/demo/main.js"]) {
      expect(dockerignored(path, patterns), path).toBe(true);
    }
  });
});
