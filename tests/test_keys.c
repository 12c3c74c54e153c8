/* test_keys.c - key files, fingerprints, authorized/known key sets and the
 * keibifs-keygen tool. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "noise.h"
#include "th.h"
#include "util.h"

static char *dir; /* per-test temp directory; freed in teardown */
static struct kb_noise_rng *rng;

static void setup(void)
{
	dir = th_tmpdir("keys");
	ck_assert_int_eq(kb_noise_rng_new(&rng), 0);
}

static void teardown(void)
{
	th_sh("rm -rf '%s'", dir);
	free(dir);
	kb_noise_rng_free(rng);
}

static const char *path(const char *name)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	return buf;
}

static void write_file(const char *name, const char *text, mode_t mode)
{
	FILE *f = fopen(path(name), "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(chmod(path(name), mode), 0);
}

START_TEST(test_generate_load)
{
	uint8_t pub[32], pub2[32], priv[32], pub3[32];
	char err[512], key[4096], comment[64];
	struct stat st;

	snprintf(key, sizeof(key), "%s", path("id"));
	ck_assert_int_eq(kb_key_generate(key, false, rng, pub, err, sizeof(err)), 0);
	ck_assert_int_eq(stat(key, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(kb_key_load_private(key, priv, pub2, err, sizeof(err)), 0);
	ck_assert_mem_eq(pub, pub2, 32);
	ck_assert_int_eq(kb_x25519_pub(priv, pub3), 0);
	ck_assert_mem_eq(pub, pub3, 32);
	ck_assert_int_eq(kb_key_load_public(path("id.pub"), pub2, err, sizeof(err)), 0);
	ck_assert_mem_eq(pub, pub2, 32);
	/* a private key file also yields its public key */
	ck_assert_int_eq(kb_key_load_public(key, pub2, err, sizeof(err)), 0);
	ck_assert_mem_eq(pub, pub2, 32);
	/* overwrite refused, then allowed with force (a new key) */
	ck_assert_int_eq(kb_key_generate(key, false, rng, pub2, err, sizeof(err)), -EEXIST);
	ck_assert_ptr_nonnull(strstr(err, "already exists"));
	ck_assert_int_eq(
		kb_key_generate_comment(key, "me@there", true, rng, pub2, err, sizeof(err)), 0);
	ck_assert_mem_ne(pub, pub2, 32);
	ck_assert_int_eq(kb_key_load_public_comment(path("id.pub"), pub3, comment, sizeof(comment),
						    err, sizeof(err)),
			 0);
	ck_assert_mem_eq(pub2, pub3, 32);
	ck_assert_str_eq(comment, "me@there");
}
END_TEST

/* Fingerprint: SHA256: + 43 unpadded base64 chars, equal to what openssl
 * computes from the .pub file's key. */
START_TEST(test_fingerprint)
{
	uint8_t pub[32];
	char err[512], fpr[KB_FPR_LEN], want[128], *out = NULL;

	ck_assert_int_eq(kb_key_generate(path("id"), false, rng, pub, err, sizeof(err)), 0);
	kb_key_fingerprint(pub, fpr);
	ck_assert_uint_eq(strlen(fpr), 7 + 43);
	ck_assert(!strncmp(fpr, "SHA256:", 7));
	ck_assert_ptr_null(strchr(fpr, '='));
	ck_assert_int_eq(th_sh_out(&out,
				   "awk '{print $2}' '%s' | base64 -d | openssl dgst -sha256 "
				   "-binary | base64 | tr -d '=\\n'",
				   path("id.pub")),
			 0);
	snprintf(want, sizeof(want), "SHA256:%s", out);
	ck_assert_str_eq(fpr, want);
	free(out);
}
END_TEST

START_TEST(test_private_perms)
{
	uint8_t pub[32], priv[32];
	char err[512];

	ck_assert_int_eq(kb_key_generate(path("id"), false, rng, pub, err, sizeof(err)), 0);
	ck_assert_int_eq(chmod(path("id"), 0644), 0);
	ck_assert_int_eq(kb_key_load_private(path("id"), priv, pub, err, sizeof(err)), -EPERM);
	ck_assert_ptr_nonnull(strstr(err, "UNPROTECTED PRIVATE KEY FILE"));
	ck_assert_ptr_nonnull(strstr(err, "0644"));
	ck_assert_int_eq(chmod(path("id"), 0640), 0);
	ck_assert_int_eq(kb_key_load_private(path("id"), priv, pub, err, sizeof(err)), -EPERM);
	ck_assert_int_eq(chmod(path("id"), 0400), 0);
	ck_assert_int_eq(kb_key_load_private(path("id"), priv, pub, err, sizeof(err)), 0);
	/* garbage */
	write_file("bad", "not base64!\n", 0600);
	ck_assert_int_eq(kb_key_load_private(path("bad"), priv, pub, err, sizeof(err)), -EINVAL);
	write_file("short", "AAAA\n", 0600);
	ck_assert_int_eq(kb_key_load_private(path("short"), priv, pub, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(kb_key_load_private(path("missing"), priv, pub, err, sizeof(err)),
			 -ENOENT);
}
END_TEST

START_TEST(test_parse_line)
{
	uint8_t pub[32], want[32];
	char comment[64];

	memset(want, 0xab, 32);
	ck_assert_int_eq(
		kb_key_parse_public_line(
			"keibifs-x25519 q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s= a b", pub),
		0);
	ck_assert_mem_eq(pub, want, 32);
	ck_assert_int_eq(
		kb_key_parse_public_comment(
			"  keibifs-x25519\tq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s  c@d", pub,
			comment, sizeof(comment)),
		0);
	ck_assert_str_eq(comment, "c@d");
	ck_assert_int_eq(kb_key_parse_public_line("ssh-ed25519 AAAA", pub), -EINVAL);
	ck_assert_int_eq(kb_key_parse_public_line("keibifs-x25519", pub), -EINVAL);
	ck_assert_int_eq(kb_key_parse_public_line("keibifs-x25519 q6urq6ur", pub), -EINVAL);
	ck_assert_int_eq(
		kb_key_parse_public_line("keibifs-x25519x q6urq6urq6urq6urq6urq6urq6urq6urq6"
					 "urq6urq6s=",
					 pub),
		-EINVAL);
}
END_TEST

#define K1 "keibifs-x25519 q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s="
#define K2 "keibifs-x25519 AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="

START_TEST(test_keyset_file)
{
	struct kb_keyset *ks = NULL;
	uint8_t k1[32], k2[32], k3[32];
	unsigned flags = 99;
	char err[512], fpr[KB_FPR_LEN], text[512];

	memset(k1, 0xab, 32);
	memset(k2, 0x01, 32);
	memset(k3, 0x02, 32);
	kb_key_fingerprint(k3, fpr);
	snprintf(text, sizeof(text),
		 "# authorized keys\n\n   # indented comment\n" K1 " alice@a\nro " K2
		 " bob@b\r\n%s\n",
		 fpr);
	write_file("auth", text, 0644);
	ck_assert_int_eq(kb_keyset_load(&ks, path("auth"), err, sizeof(err)), 0);
	ck_assert_int_eq(kb_keyset_match(ks, k1, &flags), 0);
	ck_assert_uint_eq(flags, 0);
	ck_assert_int_eq(kb_keyset_match(ks, k2, &flags), 0);
	ck_assert_uint_eq(flags, KB_KEYF_RO);
	ck_assert_int_eq(kb_keyset_match(ks, k3, &flags), 0); /* fingerprint pin */
	k1[5] ^= 1;
	ck_assert_int_eq(kb_keyset_match(ks, k1, &flags), -ENOENT);
	kb_keyset_free(ks);
	/* group-writable and other-writable files are refused */
	ck_assert_int_eq(chmod(path("auth"), 0664), 0);
	ck_assert_int_eq(kb_keyset_load(&ks, path("auth"), err, sizeof(err)), -EPERM);
	ck_assert_ptr_nonnull(strstr(err, "bad permissions"));
	ck_assert_int_eq(chmod(path("auth"), 0646), 0);
	ck_assert_int_eq(kb_keyset_load(&ks, path("auth"), err, sizeof(err)), -EPERM);
	/* owned by another non-root user */
	ck_assert_int_eq(chmod(path("auth"), 0644), 0);
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(path("auth"), 12345, 12345), 0);
		ck_assert_int_eq(kb_keyset_load(&ks, path("auth"), err, sizeof(err)), -EPERM);
		ck_assert_ptr_nonnull(strstr(err, "owned by uid 12345"));
	}
}
END_TEST

START_TEST(test_keyset_errors)
{
	static const struct {
		const char *text, *msg;
	} cases[] = {
		{"# ok\n" K1 "\nrw " K2 "\n", ":3: unknown option 'rw'"},
		{K1 "\nkeibifs-x25519 AAAA\n", ":2: malformed key"},
		{"\n\n\nSHA256:tooshort\n", ":4: malformed fingerprint"},
		{"ro\n", ":1: malformed key"},
		{"ro,ro,bogus " K1 "\n", ":1: unknown option 'bogus'"},
	};
	struct kb_keyset *ks = NULL;
	char err[512];

	for (size_t i = 0; i < KB_ARRAY_SIZE(cases); i++) {
		write_file("auth", cases[i].text, 0600);
		ck_assert_int_eq(kb_keyset_load(&ks, path("auth"), err, sizeof(err)), -EINVAL);
		ck_assert_msg(strstr(err, cases[i].msg) != NULL, "%s", err);
		ck_assert_msg(!strncmp(err, path("auth"), strlen(path("auth"))), "%s", err);
	}
	ck_assert_int_eq(kb_keyset_load(&ks, path("nope"), err, sizeof(err)), -ENOENT);
	/* programmatic set, fingerprint pins */
	ck_assert_int_eq(kb_keyset_new(&ks), 0);
	ck_assert_int_eq(kb_keyset_add_fingerprint(ks, "SHA256:abc"), -EINVAL);
	ck_assert_int_eq(kb_keyset_add_fingerprint(ks, "MD5:abc"), -EINVAL);
	{
		uint8_t k[32] = {7}, other[32] = {8};
		char fpr[KB_FPR_LEN];

		kb_key_fingerprint(k, fpr);
		ck_assert_int_eq(kb_keyset_add_fingerprint(ks, fpr), 0);
		ck_assert_int_eq(kb_keyset_match(ks, k, NULL), 0);
		ck_assert_int_eq(kb_keyset_match(ks, other, NULL), -ENOENT);
		ck_assert_int_eq(kb_keyset_add(ks, other, KB_KEYF_RO), 0);
		ck_assert_int_eq(kb_keyset_match(ks, other, NULL), 0);
	}
	kb_keyset_free(ks);
	kb_keyset_free(NULL);
}
END_TEST

START_TEST(test_keygen_tool)
{
	const char *kg = th_bin("keibifs-keygen");
	char *out = NULL, fpr[128];
	uint8_t pub[32];
	char err[512], want[KB_FPR_LEN];

	ck_assert_int_eq(th_sh_out(&out, "%s -f %s/k -C test@host", kg, dir), 0);
	ck_assert_ptr_nonnull(strstr(out, "Your identification has been saved in"));
	ck_assert_ptr_nonnull(strstr(out, "Your public key has been saved in"));
	ck_assert_ptr_nonnull(strstr(out, "The key fingerprint is:"));
	ck_assert_int_eq(kb_key_load_public(path("k.pub"), pub, err, sizeof(err)), 0);
	kb_key_fingerprint(pub, want);
	ck_assert_ptr_nonnull(strstr(out, want));
	free(out);
	/* -l on .pub and private file */
	ck_assert_int_eq(th_sh_out(&out, "%s -l -f %s/k.pub", kg, dir), 0);
	snprintf(fpr, sizeof(fpr), "%s test@host\n", want);
	ck_assert_str_eq(out, fpr);
	free(out);
	ck_assert_int_eq(th_sh_out(&out, "%s -l -f %s/k", kg, dir), 0);
	ck_assert(!strncmp(out, want, strlen(want)));
	free(out);
	/* overwrite refused without -y, key unchanged; then -y replaces it */
	ck_assert_int_ne(th_sh_out(&out, "%s -f %s/k", kg, dir), 0);
	ck_assert_ptr_nonnull(strstr(out, "already exists"));
	free(out);
	ck_assert_int_eq(th_sh_out(&out, "%s -l -f %s/k.pub", kg, dir), 0);
	ck_assert_str_eq(out, fpr);
	free(out);
	ck_assert_int_eq(th_sh("%s -y -f %s/k >/dev/null", kg, dir), 0);
	ck_assert_int_eq(th_sh_out(&out, "%s -l -f %s/k.pub", kg, dir), 0);
	ck_assert_str_ne(out, fpr);
	free(out);
	/* loose private key refused with ssh's words */
	ck_assert_int_eq(th_sh("chmod 644 %s/k", dir), 0);
	ck_assert_int_ne(th_sh_out(&out, "%s -l -f %s/k", kg, dir), 0);
	ck_assert_ptr_nonnull(strstr(out, "UNPROTECTED PRIVATE KEY FILE!"));
	free(out);
	ck_assert_int_eq(th_sh_out(&out, "%s --version", kg), 0);
	ck_assert_ptr_nonnull(strstr(out, "keibifs-keygen 0.1.0 (bulk AEAD: "));
	free(out);
	ck_assert_int_eq(th_sh_out(&out, "%s --help", kg), 0);
	ck_assert_ptr_nonnull(strstr(out, "usage:"));
	free(out);
	ck_assert_int_ne(th_sh("%s -Q 2>/dev/null", kg), 0);
}
END_TEST

/* known_peers lines bound to hosts, as in ssh's known_hosts: a key bound to
 * another host is not accepted; a different key for a bound host is a
 * CHANGED key naming the file and line; unbound lines match any host. */
START_TEST(test_known_peers_hosts)
{
	struct kb_keyset *ks = NULL;
	uint8_t k1[32], k2[32], k3[32], k4[32];
	char err[512], why[1024], text[1024], fpr3[KB_FPR_LEN], want[4200];

	memset(k1, 0xab, 32);
	memset(k2, 0x01, 32);
	memset(k3, 0x02, 32);
	memset(k4, 0x03, 32);
	kb_key_fingerprint(k3, fpr3);
	snprintf(text, sizeof(text),
		 "# known peers\n"
		 "10.77.0.1,srv.example " K1 " srv\n"
		 "*.lan,!bad.lan " K2 "\n"
		 "[srv.example]:4000 %s\n"
		 "[::1]:4001 " K2 "\n"
		 "::1 " K1 "\n",
		 fpr3);
	write_file("kp", text, 0644);
	ck_assert_int_eq(kb_keyset_load_peers(&ks, path("kp"), err, sizeof(err)), 0);
	/* bound to the host (by name or address, default port) */
	ck_assert_int_eq(
		kb_keyset_match_host(ks, "srv.example", "26431", k1, NULL, why, sizeof(why)), 0);
	ck_assert_int_eq(kb_keyset_match_host(ks, "10.77.0.1", "26431", k1, NULL, why, sizeof(why)),
			 0);
	ck_assert_int_eq(
		kb_keyset_match_host(ks, "SRV.Example", "26431", k1, NULL, why, sizeof(why)), 0);
	ck_assert_int_eq(kb_keyset_match_host(ks, "::1", "26431", k1, NULL, why, sizeof(why)), 0);
	/* wildcards and negation */
	ck_assert_int_eq(kb_keyset_match_host(ks, "nas.lan", "26431", k2, NULL, why, sizeof(why)),
			 0);
	ck_assert_int_eq(kb_keyset_match_host(ks, "bad.lan", "26431", k2, NULL, why, sizeof(why)),
			 -ENOENT);
	/* [host]:port binds that port only; a fingerprint pin works too */
	ck_assert_int_eq(
		kb_keyset_match_host(ks, "srv.example", "4000", k3, NULL, why, sizeof(why)), 0);
	ck_assert_int_eq(kb_keyset_match_host(ks, "::1", "4001", k2, NULL, why, sizeof(why)), 0);
	/* a key bound to another host is not accepted for this one */
	ck_assert_int_eq(
		kb_keyset_match_host(ks, "other.example", "26431", k1, NULL, why, sizeof(why)),
		-ENOENT);
	ck_assert_int_eq(
		kb_keyset_match_host(ks, "srv.example", "26431", k2, NULL, why, sizeof(why)),
		-EKEYREJECTED);
	/* a different key for a bound host: CHANGED, with file and line */
	ck_assert_int_eq(
		kb_keyset_match_host(ks, "srv.example", "26431", k4, NULL, why, sizeof(why)),
		-EKEYREJECTED);
	ck_assert_msg(strstr(why, "CHANGED") != NULL, "%s", why);
	snprintf(want, sizeof(want), "%s:2", path("kp"));
	ck_assert_msg(strstr(why, want) != NULL, "%s", why);
	ck_assert_int_eq(
		kb_keyset_match_host(ks, "srv.example", "4000", k1, NULL, why, sizeof(why)),
		-EKEYREJECTED);
	snprintf(want, sizeof(want), "%s:4", path("kp"));
	ck_assert_msg(strstr(why, want) != NULL, "%s", why);
	/* an unknown host is just unknown */
	ck_assert_int_eq(
		kb_keyset_match_host(ks, "new.example", "26431", k4, NULL, why, sizeof(why)),
		-ENOENT);
	ck_assert_ptr_null(strstr(why, "CHANGED"));
	/* unbound lines still match any host; a -o peer= pin that does not
	 * match is a changed key too */
	ck_assert_int_eq(kb_keyset_add(ks, k4, 0), 0);
	ck_assert_int_eq(
		kb_keyset_match_host(ks, "new.example", "26431", k4, NULL, why, sizeof(why)), 0);
	kb_keyset_free(ks);
	ck_assert_int_eq(kb_keyset_new(&ks), 0);
	ck_assert_int_eq(kb_keyset_add_fingerprint(ks, fpr3), 0);
	ck_assert_int_eq(kb_keyset_match_host(ks, "x", "26431", k3, NULL, why, sizeof(why)), 0);
	ck_assert_int_eq(kb_keyset_match_host(ks, "x", "26431", k4, NULL, why, sizeof(why)),
			 -EKEYREJECTED);
	ck_assert_msg(strstr(why, "CHANGED") && strstr(why, "peer=") && strstr(why, fpr3), "%s",
		      why);
	kb_keyset_free(ks);
	/* the server's authorized keys keep options, not hosts */
	write_file("auth", "10.0.0.1 " K1 "\n", 0644);
	ck_assert_int_eq(kb_keyset_load(&ks, path("auth"), err, sizeof(err)), -EINVAL);
	/* a bad pattern line names its line */
	write_file("kp", K1 "\nhost\n", 0644);
	ck_assert_int_eq(kb_keyset_load_peers(&ks, path("kp"), err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, ":2: ") != NULL, "%s", err);
}
END_TEST

/* keibifs-keygen: -f creates missing parents 0700, FILE as an argument
 * works as the hints say, --psk writes a 0600 pre-shared key. */
START_TEST(test_keygen_paths)
{
	const char *kg = th_bin("keibifs-keygen");
	char *out = NULL, p[4200];
	struct stat st;
	uint8_t psk[32];

	ck_assert_int_eq(th_sh_out(&out, "%s -f %s/a/b/id -C x", kg, dir), 0);
	free(out);
	snprintf(p, sizeof(p), "%s/a/b", dir);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	snprintf(p, sizeof(p), "%s/a", dir);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	/* positional FILE */
	ck_assert_int_eq(th_sh_out(&out, "%s %s/c/id2", kg, dir), 0);
	ck_assert_ptr_nonnull(strstr(out, "The key fingerprint is:"));
	free(out);
	snprintf(p, sizeof(p), "%s/c/id2.pub", dir);
	ck_assert_int_eq(stat(p, &st), 0);
	/* both -f and FILE, or two FILEs: a usage error naming it */
	ck_assert_int_eq(th_sh_out(&out, "%s -f %s/x %s/y", kg, dir, dir), 2);
	free(out);
	/* PSK */
	ck_assert_int_eq(th_sh_out(&out, "%s --psk %s/d/psk", kg, dir), 0);
	free(out);
	snprintf(p, sizeof(p), "%s/d/psk", dir);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	{
		char e[256];

		ck_assert_int_eq(kb_psk_load(p, psk, e, sizeof(e)), 0);
	}
	ck_assert_int_ne(th_sh_out(&out, "%s --psk %s/d/psk", kg, dir), 0);
	ck_assert_ptr_nonnull(strstr(out, "already exists"));
	free(out);
}
END_TEST

Suite *suite_keys(void);
Suite *suite_keys(void)
{
	Suite *s = suite_create("keys");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_generate_load);
	tcase_add_test(tc, test_fingerprint);
	tcase_add_test(tc, test_private_perms);
	tcase_add_test(tc, test_parse_line);
	tcase_add_test(tc, test_keyset_file);
	tcase_add_test(tc, test_keyset_errors);
	tcase_add_test(tc, test_keygen_tool);
	tcase_add_test(tc, test_known_peers_hosts);
	tcase_add_test(tc, test_keygen_paths);
	suite_add_tcase(s, tc);
	return s;
}
