/**
 * OCI/Docker image references, checked against the distribution reference grammar before anything
 * reaches a container engine. The engine API puts the reference into a URL path unescaped, so a
 * reference outside the grammar (`..` segments, `?`, `#`, `%`, whitespace) can make the engine
 * answer with a redirect or act on another path entirely.
 *
 *   reference  := name [ ":" tag ] [ "@" digest ]
 *   name       := [ domain "/" ] path-component [ "/" path-component ]*
 *   domain     := host [ ":" port ]        host: DNS name, IPv4, or [IPv6]
 *   path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 *   digest     := algorithm ":" hex        algorithm: [a-z0-9]+ ( [+._-] [a-z0-9]+ )*, hex ≥ 32
 *
 * The first component is a domain when it contains "." or ":", is "localhost", or has an
 * uppercase letter (the same rule Docker uses). The name is at most 255 characters.
 */

export interface ImageReference {
  readonly domain: string | undefined;
  readonly path: string;
  readonly tag: string | undefined;
  readonly digest: string | undefined;
}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const IPV6_HOST = /^\[[0-9a-fA-F:.]+\]$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}$/;
const MAX_NAME = 255;

/** Why `reference` is not a valid image reference, or undefined when it is. */
export function imageReferenceProblem(reference: string): string | undefined {
  const result = parse(reference);
  return typeof result === 'string' ? result : undefined;
}

/** Parse an image reference; throws a `TypeError` naming the problem. */
export function parseImageReference(reference: string): ImageReference {
  const result = parse(reference);
  if (typeof result === 'string') throw new TypeError(`invalid image reference ${JSON.stringify(reference)}: ${result}`);
  return result;
}

function parse(reference: string): ImageReference | string {
  if (typeof reference !== 'string' || reference === '') return 'it is empty';
  if (reference.length > 4096) return 'it is longer than 4096 characters';
  const bad = /[^A-Za-z0-9._\-/:@+[\]]/.exec(reference);
  if (bad !== null) return `it contains ${JSON.stringify(bad[0])}, which no image reference may contain`;

  let rest = reference;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) return `the digest "${digest}" is not algorithm:hex (at least 32 hex digits)`;
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) return `the tag "${tag}" is not 1-128 letters, digits, "_", "." or "-" (not starting with "." or "-")`;
  }
  if (rest === '') return 'the repository name is empty';
  if (rest.length > MAX_NAME) return `the repository name is longer than ${MAX_NAME} characters`;

  const components = rest.split('/');
  let domain: string | undefined;
  const first = components[0]!;
  if (components.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || /[A-Z]/.test(first))) {
    domain = first;
    components.shift();
    const problem = domainProblem(domain);
    if (problem !== undefined) return problem;
  }
  for (const component of components) {
    if (component === '') return 'it has an empty path component ("//" or a leading or trailing "/")';
    if (component === '.' || component === '..') return `the path component "${component}" is not allowed`;
    if (!PATH_COMPONENT.test(component)) {
      return `the path component "${component}" must be lowercase letters and digits, separated by ".", "_", "__" or "-"`;
    }
  }
  return { domain, path: components.join('/'), tag, digest };
}

function domainProblem(domain: string): string | undefined {
  let host = domain;
  const portMatch = /^(.*?)(?::(\d+))?$/.exec(domain);
  if (portMatch !== null && portMatch[2] !== undefined && !domain.endsWith(']')) {
    host = portMatch[1]!;
    const port = Number(portMatch[2]);
    if (port < 1 || port > 65535) return `the registry port "${portMatch[2]}" is not 1-65535`;
  } else if (domain.includes(':') && !domain.startsWith('[')) {
    return `the registry "${domain}" has an invalid port`;
  }
  if (host.startsWith('[')) {
    return IPV6_HOST.test(host) ? undefined : `the registry address "${host}" is not a bracketed IPv6 address`;
  }
  const labels = host.split('.');
  if (labels.some((label) => !DOMAIN_COMPONENT.test(label))) {
    return `the registry host "${host}" is not a DNS name or IPv4 address (letters, digits and inner "-" per label)`;
  }
  return undefined;
}
