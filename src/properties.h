/*
 * properties.h — validation and normalization of benefits.properties.
 *
 * The catalog (catalog.c) calls BenefitPropertiesNormalize before it writes a
 * benefit; everything else in the extension reads benefits.properties in the
 * normalized shapes it produces (see properties.c for each type's shape).
 */
#ifndef BENEFITS_PROPERTIES_H
#define BENEFITS_PROPERTIES_H

#include "postgres.h"

#include "utils/jsonb.h"
#include "utils/uuid.h"

/*
 * The stored type name for a type name given by a caller ("downloadables" ->
 * "downloadable", "meter_credit" -> "meter_credits"), or NULL when the name is
 * not a benefit type.  The result is a static string.
 */
extern const char *BenefitTypeCanonical(const char *type);

/*
 * Validates `properties` (NULL means '{}') for a benefit of `type` (a type
 * name or alias) in `organization_id` and returns the normalized properties,
 * allocated in the caller's memory context.  *normalized_type receives the
 * type the benefit is stored as (a static string): the canonical name, or
 * "meter_credits" for a "custom" benefit whose properties carry meter_id and
 * credits.
 *
 * Bad input raises SQLSTATE 22023 with a message naming the JSON path.
 * Looks up meters and files of the organization, and registers files given
 * as {name, size} in benefits.files (so the caller's transaction must be the
 * one that writes the benefit).  Opens its own SPI connection: callable with
 * or without one open.
 */
extern Jsonb *BenefitPropertiesNormalize(const char *type, Jsonb *properties,
										 pg_uuid_t organization_id,
										 const char **normalized_type);

#endif
