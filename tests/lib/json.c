/* json.c - strict recursive-descent JSON reader (see json.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define JSON_MAX_DEPTH 64

struct jp {
	const char *p, *end;
	int line;
	char *err;
	size_t errlen;
};

static int fail(struct jp *jp, const char *why)
{
	if (jp->err && jp->errlen)
		snprintf(jp->err, jp->errlen, "line %d: %s", jp->line, why);
	return -EINVAL;
}

static void skip_ws(struct jp *jp)
{
	for (; jp->p < jp->end; jp->p++) {
		if (*jp->p == '\n')
			jp->line++;
		else if (*jp->p != ' ' && *jp->p != '\t' && *jp->p != '\r')
			break;
	}
}

static int lit(struct jp *jp, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, word, n))
		return fail(jp, "invalid literal");
	jp->p += n;
	return 0;
}

static int hex4(struct jp *jp, unsigned *v)
{
	*v = 0;
	if (jp->end - jp->p < 4)
		return fail(jp, "short \\u escape");
	for (int i = 0; i < 4; i++) {
		char c = *jp->p++;
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
			   : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
			   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16;

		if (d == 16)
			return fail(jp, "bad \\u escape");
		*v = *v << 4 | d;
	}
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

static int escape(struct jp *jp, char *o, size_t *n)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	unsigned cp, lo;
	const char *k;

	if (jp->p >= jp->end)
		return fail(jp, "unterminated string");
	k = strchr(from, *jp->p);
	if (*jp->p && k) {
		jp->p++;
		o[(*n)++] = to[k - from];
		return 0;
	}
	if (*jp->p++ != 'u')
		return fail(jp, "bad escape");
	if (hex4(jp, &cp))
		return -EINVAL;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return fail(jp, "lone low surrogate");
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (jp->end - jp->p < 2 || jp->p[0] != '\\' || jp->p[1] != 'u')
			return fail(jp, "lone high surrogate");
		jp->p += 2;
		if (hex4(jp, &lo) || lo < 0xdc00 || lo > 0xdfff)
			return fail(jp, "bad surrogate pair");
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	if (cp == 0)
		return fail(jp, "NUL in string");
	*n += put_utf8(o + *n, cp);
	return 0;
}

/* jp->p is just past the opening quote. The decoded string is never longer
 * than its source text, so that bounds the allocation. */
static int string(struct jp *jp, char **out)
{
	const char *q = jp->p;
	char *s; /* owned until handed to *out */
	size_t n = 0;

	while (q < jp->end && *q != '"')
		q += *q == '\\' ? 2 : 1;
	if (q >= jp->end)
		return fail(jp, "unterminated string");
	s = malloc((size_t)(q - jp->p) + 1);
	if (!s)
		return -ENOMEM;
	while (*jp->p != '"') {
		unsigned char c = (unsigned char)*jp->p;

		if (c < 0x20) {
			free(s);
			return fail(jp, "control character in string");
		}
		if (c == '\\') {
			jp->p++;
			if (escape(jp, s, &n)) {
				free(s);
				return -EINVAL;
			}
			continue;
		}
		s[n++] = (char)c;
		jp->p++;
	}
	jp->p++;
	s[n] = '\0';
	*out = s;
	return 0;
}

static int digits(struct jp *jp)
{
	const char *s = jp->p;

	while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9')
		jp->p++;
	return jp->p > s ? 0 : -1;
}

static int number(struct jp *jp, double *v)
{
	const char *s = jp->p;
	char buf[64]; /* copy for strtod, which needs a NUL */

	if (jp->p < jp->end && *jp->p == '-')
		jp->p++;
	if (jp->p < jp->end && *jp->p == '0')
		jp->p++;
	else if (digits(jp))
		return fail(jp, "bad number");
	if (jp->p < jp->end && *jp->p == '.' && (jp->p++, digits(jp)))
		return fail(jp, "bad fraction");
	if (jp->p < jp->end && (*jp->p == 'e' || *jp->p == 'E')) {
		jp->p++;
		if (jp->p < jp->end && (*jp->p == '+' || *jp->p == '-'))
			jp->p++;
		if (digits(jp))
			return fail(jp, "bad exponent");
	}
	if ((size_t)(jp->p - s) >= sizeof(buf))
		return fail(jp, "number too long");
	memcpy(buf, s, (size_t)(jp->p - s));
	buf[jp->p - s] = '\0';
	*v = strtod(buf, NULL);
	return 0;
}

static int value(struct jp *jp, struct kb_json *j, int depth);

/* Elements of an array or members of an object, after the opening bracket. */
static int members(struct jp *jp, struct kb_json *j, int depth, char close)
{
	struct kb_json **tail = &j->child;

	skip_ws(jp);
	if (jp->p < jp->end && *jp->p == close) {
		jp->p++;
		return 0;
	}
	for (;;) {
		struct kb_json *c = calloc(1, sizeof(*c)); /* owned by j once linked */
		int ret;

		if (!c)
			return -ENOMEM;
		*tail = c;
		tail = &c->next;
		skip_ws(jp);
		if (close == '}') {
			if (jp->p >= jp->end || *jp->p != '"')
				return fail(jp, "expected member name");
			jp->p++;
			if ((ret = string(jp, &c->key)))
				return ret;
			skip_ws(jp);
			if (jp->p >= jp->end || *jp->p++ != ':')
				return fail(jp, "expected ':'");
		}
		if ((ret = value(jp, c, depth + 1)))
			return ret;
		skip_ws(jp);
		if (jp->p < jp->end && *jp->p == ',') {
			jp->p++;
			continue;
		}
		if (jp->p < jp->end && *jp->p == close) {
			jp->p++;
			return 0;
		}
		return fail(jp, "expected ',' or closing bracket");
	}
}

static int value(struct jp *jp, struct kb_json *j, int depth)
{
	if (depth > JSON_MAX_DEPTH)
		return fail(jp, "nested too deeply");
	skip_ws(jp);
	if (jp->p >= jp->end)
		return fail(jp, "unexpected end");
	switch (*jp->p) {
	case '{':
	case '[':
		j->type = *jp->p == '{' ? KB_JSON_OBJ : KB_JSON_ARR;
		return members(jp, j, depth, *jp->p++ == '{' ? '}' : ']');
	case '"':
		j->type = KB_JSON_STR;
		jp->p++;
		return string(jp, &j->str);
	case 't':
	case 'f':
		j->type = KB_JSON_BOOL;
		j->b = *jp->p == 't';
		return lit(jp, j->b ? "true" : "false");
	case 'n':
		j->type = KB_JSON_NULL;
		return lit(jp, "null");
	default:
		j->type = KB_JSON_NUM;
		return number(jp, &j->num);
	}
}

int kb_json_parse(struct kb_json **out, const char *text, size_t len, char *err, size_t errlen)
{
	struct jp jp = {.p = text, .end = text + len, .line = 1, .err = err, .errlen = errlen};
	struct kb_json *j = calloc(1, sizeof(*j)); /* owned until *out */
	int ret;

	if (!j)
		return -ENOMEM;
	ret = value(&jp, j, 0);
	skip_ws(&jp);
	if (!ret && jp.p != jp.end)
		ret = fail(&jp, "trailing data");
	if (ret) {
		kb_json_free(j);
		return ret;
	}
	*out = j;
	return 0;
}

void kb_json_free(struct kb_json *j)
{
	while (j) {
		struct kb_json *next = j->next;

		kb_json_free(j->child);
		free(j->key);
		free(j->str);
		free(j);
		j = next;
	}
}

const struct kb_json *kb_json_get(const struct kb_json *obj, const char *key)
{
	if (!obj || obj->type != KB_JSON_OBJ)
		return NULL;
	for (const struct kb_json *c = obj->child; c; c = c->next)
		if (!strcmp(c->key, key))
			return c;
	return NULL;
}

const char *kb_json_get_str(const struct kb_json *obj, const char *key)
{
	const struct kb_json *v = kb_json_get(obj, key);

	return v && v->type == KB_JSON_STR ? v->str : NULL;
}
