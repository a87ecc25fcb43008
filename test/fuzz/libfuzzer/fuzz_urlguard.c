/*
 * fuzz_urlguard.c — the URL guard's address classification (urlguard.c).
 *
 * Input: an address family byte, 16 address bytes and a detail buffer size.
 * Properties: every IPv4 address is judged as an independent table of the
 * IANA special-purpose ranges (written here as CIDR text) judges it; the
 * same IPv4 address inside IPv4-mapped, IPv4-compatible, IPv4-translated,
 * NAT64 and 6to4 IPv6 addresses gets the same answer; IPv6 ranges that are
 * never public are refused; with benefits.allow_private_network on every
 * IPv4 and IPv6 address is allowed; other families are refused; a refusal's
 * detail is NUL-terminated within its buffer, whatever the buffer's size.
 *
 * Concurrency: one input at a time (libFuzzer).
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "worker.h"

/* IPv4 ranges that are not the public internet (RFC 6890 and the IANA registries). */
static const char *const private_v4[] = {
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
	"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
	"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
};

/* IPv6 ranges never public whatever follows (the IPv4-carrying ones are judged by their IPv4 address). */
static const char *const private_v6[] = {
	"fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8", "2001:db8::/32", "64:ff9b:1::/48",
};

static bool
InCidr(const uint8 *addr, const char *cidr, int family)
{
	char		text[64];
	char	   *slash;
	uint8		net[16];
	int			bits;

	strlcpy(text, cidr, sizeof(text));
	slash = strchr(text, '/');
	*slash = '\0';
	bits = atoi(slash + 1);
	if (inet_pton(family, text, net) != 1)
		abort();
	for (int i = 0; i < bits; i++)
		if (((addr[i / 8] ^ net[i / 8]) >> (7 - i % 8)) & 1)
			return false;
	return true;
}

static bool
Allowed(int family, const uint8 *bytes, size_t detail_len)
{
	struct sockaddr_storage ss;
	char	   *detail = palloc(detail_len);
	bool		allowed;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = family;
	if (family == AF_INET)
		memcpy(&((struct sockaddr_in *) &ss)->sin_addr, bytes, 4);
	else if (family == AF_INET6)
		memcpy(&((struct sockaddr_in6 *) &ss)->sin6_addr, bytes, 16);
	memset(detail, 'x', detail_len);
	allowed = UrlGuardAddressAllowed((struct sockaddr *) &ss, detail, detail_len);
	if (!allowed)
		FuzzCheck(memchr(detail, '\0', detail_len) != NULL, "detail not terminated in %zu bytes", detail_len);
	return allowed;
}

/* The IPv6 forms that carry an IPv4 address, each judged as that address. */
static void
CheckEmbedded(const uint8 *v4, bool v4_allowed)
{
	static const uint8 prefixes[][12] = {
		{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff},
		{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0},
		{0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0},
	};
	uint8		v6[16];

	for (size_t i = 0; i < lengthof(prefixes); i++)
	{
		memcpy(v6, prefixes[i], 12);
		memcpy(v6 + 12, v4, 4);
		FuzzCheck(Allowed(AF_INET6, v6, 128) == v4_allowed, "embedded form %zu of %u.%u.%u.%u judged otherwise",
				  i, v4[0], v4[1], v4[2], v4[3]);
	}
	/* 6to4: 2002:AABB:CCDD::/48, whatever follows */
	memset(v6, 0xa5, sizeof(v6));
	v6[0] = 0x20;
	v6[1] = 0x02;
	memcpy(v6 + 2, v4, 4);
	FuzzCheck(Allowed(AF_INET6, v6, 128) == v4_allowed, "6to4 form of %u.%u.%u.%u judged otherwise",
			  v4[0], v4[1], v4[2], v4[3]);
}

static void
Body(const uint8_t *data, size_t size)
{
	uint8		addr[16] = {0};
	size_t		detail_len;
	int			family;

	if (size < 1)
		return;
	memcpy(addr, data + 1, Min(size - 1, 16));
	detail_len = size > 17 ? 1 + data[17] % 200 : 128;
	family = data[0] % 3 == 0 ? AF_INET : data[0] % 3 == 1 ? AF_INET6 : data[0];

	benefits_allow_private_network = false;
	if (family == AF_INET)
	{
		bool		expect = true;
		bool		allowed = Allowed(AF_INET, addr, detail_len);

		for (size_t i = 0; i < lengthof(private_v4); i++)
			if (InCidr(addr, private_v4[i], AF_INET))
				expect = false;
		FuzzCheck(allowed == expect, "%u.%u.%u.%u: allowed %d, expected %d", addr[0], addr[1], addr[2], addr[3],
				  allowed, expect);
		CheckEmbedded(addr, allowed);
	}
	else if (family == AF_INET6)
	{
		bool		allowed = Allowed(AF_INET6, addr, detail_len);

		for (size_t i = 0; i < lengthof(private_v6); i++)
			if (InCidr(addr, private_v6[i], AF_INET6))
				FuzzCheck(!allowed, "an address in %s is allowed", private_v6[i]);
	}
	else if (family != AF_INET && family != AF_INET6)
		FuzzCheck(!Allowed(family, addr, detail_len), "address family %d is allowed", family);

	benefits_allow_private_network = true;
	if (family == AF_INET || family == AF_INET6)
		FuzzCheck(Allowed(family, addr, detail_len), "refused with allow_private_network on");
	benefits_allow_private_network = false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzRun(Body, data, size);
	return 0;
}
