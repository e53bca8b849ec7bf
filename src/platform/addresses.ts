/** A host as it stands before `:port` in an address or URL: IPv6 literals in brackets. */
export function hostInAddress(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}
