/* json.h - a small strict JSON reader (RFC 8259) for test-vector files.
 *
 * Parses the whole text into a tree; strings are NUL-terminated UTF-8
 * (\u escapes decoded, an embedded NUL is refused). Not for untrusted input
 * from the network: the product never reads JSON. Depth is bounded.
 */
#ifndef KB_JSON_H
#define KB_JSON_H

#include <stdbool.h>
#include <stddef.h>

enum kb_json_type { KB_JSON_NULL, KB_JSON_BOOL, KB_JSON_NUM, KB_JSON_STR, KB_JSON_ARR,
		    KB_JSON_OBJ };

struct kb_json {
	enum kb_json_type type;
	char *key;             /* member name inside an object, else NULL; owned */
	char *str;             /* KB_JSON_STR: owned, NUL-terminated */
	double num;            /* KB_JSON_NUM */
	bool b;                /* KB_JSON_BOOL */
	struct kb_json *child; /* first element / member; owned */
	struct kb_json *next;  /* next sibling; owned by the parent's list */
};

/* 0, or -EINVAL with "line N: reason" in err. */
int kb_json_parse(struct kb_json **out, const char *text, size_t len, char *err, size_t errlen);
void kb_json_free(struct kb_json *j); /* NULL-safe, frees siblings' subtree too */
/* Member `key` of an object, or NULL. */
const struct kb_json *kb_json_get(const struct kb_json *obj, const char *key);
/* Member `key` if it is a string, else NULL. */
const char *kb_json_get_str(const struct kb_json *obj, const char *key);

#endif
