/**
 * A `host:port` address: a host name or IPv4 address, or an IPv6 address in brackets, and a port from 1 to 65535.
 * The one parser for configured ADB servers and devices, so what the configuration accepts is what the device
 * sources can reach.
 */
export function parseAddress(address: string): { host: string; port: number } {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+)):(\d{1,5})$/.exec(address);
  const port = Number(match?.[3]);
  if (match === null || port < 1 || port > 65535) throw new Error(`invalid address ${JSON.stringify(address)}`);
  return { host: match[1] ?? match[2]!, port };
}
