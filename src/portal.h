/*
 * portal.h — customer sessions (portal.c) and the portal document
 * (portal_document.c).
 */
#ifndef BENEFITS_PORTAL_H
#define BENEFITS_PORTAL_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/* The customer of a live session token; the one 28000 error otherwise. */
extern pg_uuid_t CustomerSessionResolve(text *token);
extern void CustomerSessionInvalid(void) pg_attribute_noreturn();

/* The portal document of a customer, or NULL; inside an SPI connection. */
extern Jsonb *PortalDocument(Datum customer_id);

/* portal_html.c */
extern void HtmlEscape(StringInfo buf, const char *s);
extern char *PortalHtml(Jsonb *doc, const char *action_url);

#endif
