/**
 * Keeping credentials out of everything emlab writes: API keys known to this process (registered by the
 * judges that use them, plus the usual environment variables) are replaced wherever they appear, also
 * URL- or JSON-escaped, and text that looks like a credential (Authorization headers, `api-key: ...`,
 * key-like query parameters, URL passwords, `sk-...` keys) is masked in messages. Error messages,
 * log lines, cache entries and results cells pass through here before they are written.
 */

const MASK = "[REDACTED]";
const registered = new Set<string>();

/** Environment variables whose values are credentials. */
const SECRET_VARIABLES = /(^|_)(API_KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD)$/i;

/** Adds a credential to the ones `redact` and `redactSecrets` remove (very short values are ignored). */
export function registerSecret(secret: string | null | undefined): void {
  if (typeof secret !== "string") return;
  const value = secret.trim();
  if (value.length < 4) return;
  registered.add(value);
}

/** Stops removing a registered credential (when the judge holding it is gone). */
export function unregisterSecret(secret: string): void {
  registered.delete(secret.trim());
}

function knownSecrets(): string[] {
  const fromEnvironment = Object.entries(process.env)
    .filter(([name, value]) => SECRET_VARIABLES.test(name) && typeof value === "string" && value.trim().length >= 8)
    .map(([, value]) => value!.trim());
  // Longest first, so a secret containing another is removed whole.
  return [...new Set([...registered, ...fromEnvironment])].sort((a, b) => b.length - a.length);
}

function variants(secret: string): string[] {
  const json = JSON.stringify(secret).slice(1, -1);
  const doubleJson = JSON.stringify(json).slice(1, -1);
  return [...new Set([secret, encodeURIComponent(secret), json, doubleJson])];
}

function replaceAll(text: string, needle: string): string {
  return needle === "" ? text : text.split(needle).join(MASK);
}

/** Removes the known credentials (exact, URL-encoded or JSON-escaped) from `text`; nothing else changes. */
export function redactSecrets(text: string): string {
  let out = text;
  for (const secret of knownSecrets()) for (const form of variants(secret)) out = replaceAll(out, form);
  return out;
}

const PATTERNS: [RegExp, string][] = [
  // Authorization: Bearer xyz / Basic xyz (schemes are case-insensitive; "token" alone is a common word)
  [/\b(Bearer|Basic)(\s+)[A-Za-z0-9._~+/=:-]+/gi, `$1$2${MASK}`],
  // api-key: xyz, "x-api-key":"xyz", password=xyz, client_secret: xyz, access_token=xyz
  [
    /((?<![A-Za-z0-9])(?:x-)?(?:api[-_]?key|access[-_]?token|auth[-_]?token|refresh[-_]?token|client[-_]?secret|secret|password|passwd)\\?["']?\s*[:=]\s*\\?["']?)[^\s"'\\&,;}]+/gi,
    `$1${MASK}`,
  ],
  // ?key=xyz&sig=xyz in URLs
  [/([?&](?:key|token|sig|signature|code)=)[^&\s"'\\]+/gi, `$1${MASK}`],
  // https://user:password@host
  [/(\/\/[^/\s:@]+:)[^@\s/]+@/g, `$1${MASK}@`],
  // OpenAI-style keys
  [/\bsk-[A-Za-z0-9_-]{16,}/g, `sk-${MASK}`],
];

/** Removes known credentials and anything that looks like one: for messages, logs and error cells. */
export function redact(text: string): string {
  let out = redactSecrets(text);
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/** `redact`, then at most `max` characters (a hostile server can send megabytes of error text). */
export function redactMessage(text: string, max = 1000): string {
  const out = redact(text);
  return out.length <= max ? out : `${out.slice(0, max)}... (${out.length - max} more characters)`;
}
