/*
 * resultjson - reads the PASSporT extension fields of a libstirgate result
 * JSON. The input is what libstirgate's encoder writes, but it is still
 * read defensively: every step stops at the terminating NUL, nesting is
 * bounded, and output never exceeds its buffer. A member is found by
 * walking the object's members, never by searching for text, so a string
 * value (an error detail, say) that contains "div" cannot be mistaken for
 * the field.
 */
#include <string.h>

#include "resultjson.h"

#define RJ_MAX_DEPTH 32

static const char *ws(const char *p)
{
	while(*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

/* str_end returns the character after the string that starts at p ('"'),
 * or NULL. */
static const char *str_end(const char *p)
{
	for(p++; *p != '\0'; p++) {
		if(*p == '\\') {
			if(p[1] == '\0')
				return NULL;
			p++;
		} else if(*p == '"') {
			return p + 1;
		}
	}
	return NULL;
}

/* value_end returns the character after the value that starts at p, or
 * NULL. */
static const char *value_end(const char *p)
{
	int depth = 0;

	do {
		p = ws(p);
		switch(*p) {
			case '\0':
				return NULL;
			case '"':
				if((p = str_end(p)) == NULL)
					return NULL;
				break;
			case '{':
			case '[':
				if(++depth > RJ_MAX_DEPTH)
					return NULL;
				p++;
				break;
			case '}':
			case ']':
				if(--depth < 0)
					return NULL;
				p++;
				break;
			case ',':
			case ':':
				if(depth == 0)
					return NULL;
				p++;
				break;
			default: /* number, true, false, null */
				while(*p != '\0' && strchr(",:]}\"{[ \t\r\n", *p) == NULL)
					p++;
		}
	} while(depth > 0);
	return p;
}

/* member returns the value of member key of the object at p ('{'), or
 * NULL. */
static const char *member(const char *p, const char *key)
{
	size_t klen = strlen(key);
	const char *k, *e;

	p = ws(p);
	if(*p != '{')
		return NULL;
	p = ws(p + 1);
	if(*p == '}')
		return NULL;
	for(;;) {
		if(*p != '"' || (e = str_end(p)) == NULL)
			return NULL;
		k = p + 1;
		p = ws(e);
		if(*p != ':')
			return NULL;
		p = ws(p + 1);
		if((size_t)(e - k - 1) == klen && memcmp(k, key, klen) == 0)
			return p;
		if((p = value_end(p)) == NULL)
			return NULL;
		p = ws(p);
		if(*p != ',')
			return NULL;
		p = ws(p + 1);
	}
}

static int hex(char c)
{
	if(c >= '0' && c <= '9')
		return c - '0';
	if(c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if(c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int u4(const char *p)
{
	int i, v = 0, h;
	for(i = 0; i < 4; i++) {
		if((h = hex(p[i])) < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* put appends n bytes to out at *o, keeping room for the NUL. */
static int put(char *out, size_t len, size_t *o, const char *b, size_t n)
{
	if(*o + n >= len)
		return -1;
	memcpy(out + *o, b, n);
	*o += n;
	return 0;
}

/* copy_str appends the unescaped string at p ('"') to out at *o; control
 * characters are dropped (the value may end up in a header). */
static int copy_str(const char *p, char *out, size_t len, size_t *o)
{
	char b[4];
	int c, lo;
	size_t n;

	if(*p != '"')
		return -1;
	for(p++; *p != '"'; p++) {
		if(*p == '\0')
			return -1;
		if(*p != '\\') {
			if((unsigned char)*p >= 0x20 && *p != 0x7f && put(out, len, o, p, 1) < 0)
				return -1;
			continue;
		}
		p++;
		switch(*p) {
			case '"': case '\\': case '/':
				if(put(out, len, o, p, 1) < 0)
					return -1;
				continue;
			case 'b': case 'f': case 'n': case 'r': case 't':
				continue;
			case 'u':
				break;
			default:
				return -1;
		}
		if((c = u4(p + 1)) < 0)
			return -1;
		p += 4;
		if(c >= 0xd800 && c <= 0xdbff && p[1] == '\\' && p[2] == 'u'
				&& (lo = u4(p + 3)) >= 0xdc00 && lo <= 0xdfff) {
			c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
			p += 6;
		} else if(c >= 0xd800 && c <= 0xdfff) {
			c = 0xfffd; /* a lone surrogate */
		}
		if(c < 0x20 || c == 0x7f)
			continue;
		if(c < 0x80) {
			b[0] = (char)c;
			n = 1;
		} else if(c < 0x800) {
			b[0] = (char)(0xc0 | (c >> 6));
			b[1] = (char)(0x80 | (c & 0x3f));
			n = 2;
		} else if(c < 0x10000) {
			b[0] = (char)(0xe0 | (c >> 12));
			b[1] = (char)(0x80 | ((c >> 6) & 0x3f));
			b[2] = (char)(0x80 | (c & 0x3f));
			n = 3;
		} else {
			b[0] = (char)(0xf0 | (c >> 18));
			b[1] = (char)(0x80 | ((c >> 12) & 0x3f));
			b[2] = (char)(0x80 | ((c >> 6) & 0x3f));
			b[3] = (char)(0x80 | (c & 0x3f));
			n = 4;
		}
		if(put(out, len, o, b, n) < 0)
			return -1;
	}
	return 0;
}

int result_div(const char *js, char *out, size_t len)
{
	const char *p, *tn;
	size_t o = 0;
	int n = 0;

	if(out == NULL || len == 0)
		return -1;
	out[0] = '\0';
	if(js == NULL || (p = member(js, "div")) == NULL)
		return 0;
	if(*p != '[')
		return -1;
	p = ws(p + 1);
	if(*p == ']')
		return 0;
	for(;;) {
		if((tn = member(p, "tn")) == NULL)
			goto bad;
		if(n > 0 && put(out, len, &o, ",", 1) < 0)
			goto bad;
		if(copy_str(tn, out, len, &o) < 0)
			goto bad;
		n++;
		if((p = value_end(p)) == NULL)
			goto bad;
		p = ws(p);
		if(*p == ']')
			break;
		if(*p != ',')
			goto bad;
		p = ws(p + 1);
	}
	out[o] = '\0';
	return n;
bad:
	out[0] = '\0';
	return -1;
}

int result_rcd(const char *js, const char *key, char *out, size_t len)
{
	const char *p;
	size_t o = 0;

	if(out == NULL || len == 0)
		return -1;
	out[0] = '\0';
	if(js == NULL || key == NULL || (p = member(js, "rcd")) == NULL
			|| (p = member(p, key)) == NULL)
		return 0;
	if(copy_str(p, out, len, &o) < 0) {
		out[0] = '\0';
		return -1;
	}
	out[o] = '\0';
	return (int)o;
}
