/*
 * urlguard.c — refusing outbound connections to loopback, private,
 * link-local and other non-public addresses (documentation, benchmarking,
 * carrier-grade NAT, multicast, and IPv6 forms embedding such an IPv4
 * address: IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64, 6to4).
 *
 * Webhook URLs are chosen by tenants, so a URL naming (or resolving to) an
 * internal address could make the worker probe the database host's network.
 * The check runs on the address libcurl is about to connect to, after DNS
 * resolution, so a public name resolving to 127.0.0.1 is refused too.
 * benefits.allow_private_network (superuser-only) turns the guard off.
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "worker.h"

/* Is this IPv4 address (host byte order) outside the public internet? */
static bool
Ipv4IsPrivate(uint32 a)
{
	return (a >> 24) == 0 ||	/* 0.0.0.0/8 "this network" */
		(a >> 24) == 10 ||		/* 10.0.0.0/8 private */
		(a >> 22) == (100u << 2 | 1) || /* 100.64.0.0/10 carrier-grade NAT */
		(a >> 24) == 127 ||		/* 127.0.0.0/8 loopback */
		(a >> 16) == (169u << 8 | 254) ||	/* 169.254.0.0/16 link-local */
		(a >> 20) == (172u << 4 | 1) || /* 172.16.0.0/12 private */
		(a >> 8) == (192u << 16 | 0 << 8 | 0) ||	/* 192.0.0.0/24 IETF */
		(a >> 8) == (192u << 16 | 0 << 8 | 2) ||	/* 192.0.2.0/24 documentation */
		(a >> 8) == (192u << 16 | 88 << 8 | 99) ||	/* 192.88.99.0/24 6to4 relay */
		(a >> 16) == (192u << 8 | 168) ||	/* 192.168.0.0/16 private */
		(a >> 17) == (198u << 7 | 18 >> 1) ||	/* 198.18.0.0/15 benchmarking */
		(a >> 8) == (198u << 16 | 51 << 8 | 100) ||	/* 198.51.100.0/24 documentation */
		(a >> 8) == (203u << 16 | 0 << 8 | 113) ||	/* 203.0.113.0/24 documentation */
		(a >> 28) >= 14;		/* 224.0.0.0/4 multicast, 240.0.0.0/4 reserved */
}

/* The IPv4 address (host byte order) stored in network byte order at B. */
static uint32
Ipv4At(const uint8 *b)
{
	return ((uint32) b[0] << 24) | ((uint32) b[1] << 16) | ((uint32) b[2] << 8) | b[3];
}

/* The /96 prefixes whose last 32 bits are an IPv4 address, judged as that address. */
static const uint8 ipv4_carrying_prefixes[][12] = {
	{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},	/* ::/96 IPv4-compatible, :: and ::1 too */
	{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, /* ::ffff:0:0/96 IPv4-mapped */
	{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0}, /* ::ffff:0:0:0/96 IPv4-translated */
	{0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0},	/* 64:ff9b::/96 NAT64 */
};

/* Is this IPv6 address outside the public internet? */
static bool
Ipv6IsPrivate(const struct in6_addr *a)
{
	const uint8 *b = a->s6_addr;
	static const uint8 nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 0x01};

	for (size_t i = 0; i < lengthof(ipv4_carrying_prefixes); i++)
		if (memcmp(b, ipv4_carrying_prefixes[i], 12) == 0)
			return Ipv4IsPrivate(Ipv4At(b + 12));
	/* 2002::/16 6to4: the IPv4 address follows the prefix */
	if (b[0] == 0x20 && b[1] == 0x02)
		return Ipv4IsPrivate(Ipv4At(b + 2));
	if (memcmp(b, nat64_local, 6) == 0)
		return true;			/* 64:ff9b:1::/48 local-use NAT64 */
	return (b[0] & 0xfe) == 0xfc ||	/* fc00::/7 unique local */
		(b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) ||	/* 2001:db8::/32 documentation */
		(b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||	/* fe80::/10 link-local */
		(b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) ||	/* fec0::/10 site-local */
		b[0] == 0xff;			/* multicast */
}

/*
 * May the worker connect to this address?  When not, `detail` says why, for
 * the job's last_error.
 */
bool
UrlGuardAddressAllowed(const struct sockaddr *addr, char *detail, size_t detail_len)
{
	char		text[INET6_ADDRSTRLEN] = "?";
	bool		private_address;

	if (addr->sa_family == AF_INET)
	{
		const struct sockaddr_in *in = (const struct sockaddr_in *) addr;

		private_address = Ipv4IsPrivate(ntohl(in->sin_addr.s_addr));
		inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
	}
	else if (addr->sa_family == AF_INET6)
	{
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) addr;

		private_address = Ipv6IsPrivate(&in6->sin6_addr);
		inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
	}
	else
	{
		snprintf(detail, detail_len, "address family %d is not allowed", addr->sa_family);
		return false;
	}
	if (private_address && !benefits_allow_private_network)
	{
		snprintf(detail, detail_len,
				 "refused to connect to %s: a loopback, private, link-local or reserved address "
				 "(benefits.allow_private_network is off)", text);
		return false;
	}
	return true;
}
