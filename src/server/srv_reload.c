/* srv_reload.c - new authorized keys (and pre-shared key) while running
 * (keibifsd's SIGHUP).
 *
 * The key set and the psk are read by every handshake under srv.auth_lock
 * (a leaf lock); swapping them there means no handshake still uses the
 * old set once kb_srv_set_keys returns. Sessions and connections are then
 * checked against the new set: those of a key that is no longer listed,
 * or whose options (ro, owners) changed, end. Their connections are shut
 * down (the client sees a closed connection; with a removed key it cannot
 * come back, with changed options it gets a new session with the new
 * ones); an idle session of such a key is freed at once. Everything else
 * carries on untouched.
 */
#include <string.h>

#include "chan.h"
#include "srv_impl.h"

/* key still listed with the same options? */
static bool still_ok(const struct kb_keyset *ks, const uint8_t *key, unsigned flags)
{
	unsigned now = 0;

	return !kb_keyset_match(ks, key, &now) && now == flags;
}

bool kb_srv_key_ok(struct kb_srv *s, const uint8_t *key, unsigned flags)
{
	bool ok;

	pthread_mutex_lock(&s->auth_lock);
	ok = still_ok(s->authorized, key, flags);
	pthread_mutex_unlock(&s->auth_lock);
	return ok;
}

/* srv lock held: end what the new set no longer allows; counts. */
static void revoke(struct kb_srv *s, const struct kb_keyset *ks, unsigned *nsess, unsigned *nconn)
{
	*nsess = *nconn = 0;
	for (struct kb_srv_sess *ss = s->sessions; ss; ss = ss->next) {
		if (still_ok(ks, ss->key, ss->kflags))
			continue;
		ss->bye = true; /* no grace: freed with its last connection */
		ss->idle_since_ns = 0;
		(*nsess)++;
	}
	for (struct kb_srv_conn *c = s->conns; c; c = c->next) {
		pthread_mutex_lock(&c->lock);
		if (c->chan && !still_ok(ks, c->key, c->flags)) {
			kb_chan_shutdown(c->chan);
			(*nconn)++;
		}
		pthread_mutex_unlock(&c->lock);
	}
}

const struct kb_keyset *kb_srv_set_keys(struct kb_srv *s, const struct kb_keyset *authorized,
					const uint8_t *psk)
{
	const struct kb_keyset *old;
	unsigned nsess, nconn;

	pthread_mutex_lock(&s->auth_lock);
	old = s->authorized;
	s->authorized = authorized;
	if (psk) {
		memcpy(s->psk, psk, sizeof(s->psk));
		s->have_psk = true;
	}
	pthread_mutex_unlock(&s->auth_lock);
	pthread_mutex_lock(&s->lock);
	revoke(s, authorized, &nsess, &nconn);
	pthread_mutex_unlock(&s->lock);
	kb_srv_sess_expire(s, false); /* the idle ones marked above */
	kb_srv_logf(s, KB_SRV_LOG_INFO,
		    "reloaded keys: %zu authorized%s; ended %u session%s and %u connection%s "
		    "of keys removed or changed",
		    kb_keyset_count(authorized), psk ? ", pre-shared key re-read" : "", nsess,
		    nsess == 1 ? "" : "s", nconn, nconn == 1 ? "" : "s");
	return old;
}
