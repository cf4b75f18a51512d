import { describe, expect, it } from 'vitest';
import { addressKey } from './client-address.js';

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
