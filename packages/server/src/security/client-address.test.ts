import { describe, expect, it } from 'vitest';
import type { IncomingMessage } from 'node:http';
import { addressKey, clientAddress, plainAddress } from './client-address.js';

describe('addressKey: the key every per-address limit counts a client under', () => {
  it('keeps an IPv4 address as it is', () => {
    expect(addressKey('10.0.0.1')).toBe('10.0.0.1');
    expect(addressKey('127.0.0.2')).toBe('127.0.0.2');
  });

  it('keys an IPv4-mapped IPv6 address, however spelled, by its IPv4 address (the same client as over IPv4)', () => {
    for (const mapped of ['::ffff:10.0.0.1', '::FFFF:10.0.0.1', '0:0:0:0:0:ffff:10.0.0.1', '::ffff:a00:1', '0000:0000:0000:0000:0000:FFFF:0A00:0001']) {
      expect(addressKey(mapped), mapped).toBe('10.0.0.1');
    }
  });

  it('keys every address of one IPv6 /64 alike, whatever its spelling, and the next /64 apart', () => {
    const oneHost = [
      '2001:db8:1:2::1',
      '2001:db8:1:2:aaaa:bbbb:cccc:dddd',
      '2001:0DB8:0001:0002:FFFF:FFFF:FFFF:FFFF',
      '2001:db8:1:2::',
      '2001:db8:1:2:3:4:1.2.3.4',
    ];
    for (const address of oneHost) expect(addressKey(address), address).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
  });

  it('writes the /64 as RFC 5952 does: the longest run of zero groups compressed, no leading zeros', () => {
    expect(addressKey('2001:db8::1')).toBe('2001:db8::/64');
    expect(addressKey('2001:db8:0:0:1::')).toBe('2001:db8::/64');
    // Two runs of zeros: the longer (the host half) is the one written ::.
    expect(addressKey('1:0:0:2::5')).toBe('1:0:0:2::/64');
    expect(addressKey('1::')).toBe('1::/64');
    expect(addressKey('::1')).toBe('::/64');
    expect(addressKey('::')).toBe('::/64');
    // NAT64 and IPv4-compatible forms carry an IPv4 tail but are not mapped addresses: keyed by their /64.
    expect(addressKey('64:ff9b::1.2.3.4')).toBe('64:ff9b::/64');
    expect(addressKey('::1.2.3.4')).toBe('::/64');
  });

  it('keeps a zone id: a link-local /64 is the same on every link', () => {
    expect(addressKey('fe80::1%eth0')).toBe('fe80::%eth0/64');
    expect(addressKey('FE80::abcd:1%eth0')).toBe('fe80::%eth0/64');
    expect(addressKey('fe80::1%eth1')).toBe('fe80::%eth1/64');
  });

  it('keys anything that is not an IP address by itself', () => {
    for (const other of ['?', 'localhost', '', '1::2::3', '10.0.0.256']) expect(addressKey(other), other).toBe(other);
  });
});

describe('plainAddress: one spelling per address, for trusted proxies and forwarded hops', () => {
  it('spells IPv6 as Node reports a peer, IPv4-mapped as IPv4, and leaves IPv4 and non-addresses alone', () => {
    expect(plainAddress('2001:0DB8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
    expect(plainAddress('2001:db8::1')).toBe('2001:db8::1');
    expect(plainAddress('FE80::1%eth0')).toBe('fe80::1%eth0');
    expect(plainAddress('::FFFF:10.0.0.1')).toBe('10.0.0.1');
    expect(plainAddress('10.0.0.1')).toBe('10.0.0.1');
    expect(plainAddress('unknown')).toBe('unknown');
    expect(plainAddress(undefined)).toBeUndefined();
  });

  it('a trusted proxy given in another spelling than Node reports it is still trusted, and so is a hop', () => {
    // What the server builds from --trusted-proxies (app.ts), and a request as Node hands it over.
    const trusted = new Set(['2001:0DB8::0001', '::FFFF:192.168.0.9'].map((a) => plainAddress(a)!));
    const from = (remoteAddress: string, forwarded: string) =>
      ({ socket: { remoteAddress }, headers: { 'x-forwarded-for': forwarded } }) as unknown as IncomingMessage;
    expect(clientAddress(from('2001:db8::1', '203.0.113.7'), trusted)).toBe('203.0.113.7');
    expect(clientAddress(from('::ffff:192.168.0.9', '203.0.113.8'), trusted)).toBe('203.0.113.8');
    // The proxy chain spelt otherwise in the header: the hop after the nearer proxy is read too.
    expect(clientAddress(from('::ffff:192.168.0.9', '2001:db8:5::9, 2001:0db8:0:0::1'), trusted)).toBe('2001:db8:5::9');
    expect(clientAddress(from('2001:db8::2', '203.0.113.9'), trusted)).toBe('2001:db8::2');
  });
});
