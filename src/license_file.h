/*
 * license_file.h — the armored, signed envelope of an offline license file
 * (license_file.c), built by checkout_license (license_checkout.c).
 */
#ifndef BENEFITS_LICENSE_FILE_H
#define BENEFITS_LICENSE_FILE_H

#include "postgres.h"

#include <sodium.h>

#define LICENSE_ARMOR_BEGIN "-----BEGIN BENEFITS LICENSE-----\n"
#define LICENSE_ARMOR_END "-----END BENEFITS LICENSE-----\n"
#define LICENSE_ARMOR_WIDTH 64

/*
 * The armored file of PAYLOAD (JSON text) signed with SECRET (an Ed25519
 * secret key, wiped once it has signed) and naming the key KID.
 */
extern text *LicenseFile(const char *payload, const char *kid, unsigned char secret[crypto_sign_SECRETKEYBYTES]);

#endif
