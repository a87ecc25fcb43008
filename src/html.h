/*
 * html.h — escaping text for HTML element content and quoted attributes.
 */
#ifndef BENEFITS_HTML_H
#define BENEFITS_HTML_H

#include "postgres.h"

#include "lib/stringinfo.h"

/* Appends s (NULL appends nothing) with & < > " ' escaped. */
extern void HtmlEscape(StringInfo buf, const char *s);

#endif
