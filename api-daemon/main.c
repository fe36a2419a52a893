/*
 * order-api: accept orders over HTTP, make them durable in the write-ahead
 * journal, commit them to LMDB, ring the worker. main reads the settings,
 * applies what the journal holds, starts the committer (committer.h) and
 * the HTTP server (http.h), and watches the store and the journal until a
 * signal stops it.
 */
#include <civetweb.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "auth.h"
#include "committer.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "notify.h"
#include "orderlog.h"
#include "proc.h"
#include "store.h"

/*
 * Exit status when the LMDB environment became unusable while serving
 * (store_broken), or the journal could not be written (committer_broken):
 * a service manager starts the process again, which opens the environment
 * afresh and recovers from what the journal holds.
 */
#define API_EXIT_STORE 4
/* How often the main loop looks at the store's health, ms. */
#define STORE_CHECK_MS 1000

static struct auth *auth;	/* NULL: no token needed */

/* Part of the settings' check (also for -n): the token file. */
static int
load_tokens(const struct config *cfg)
{
	char why[256];

	if (cfg->api_token_file[0] == '\0')
		return 0;
	if (auth_load(&auth, cfg->api_token_file, why, sizeof(why)) != 0) {
		fprintf(stderr, "%s: api-token-file '%s' %s\n", cfg->progname,
		    cfg->api_token_file, why);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct http_context ctx = { 0 };
	struct committer *committer = NULL;
	struct http_server *srv = NULL;
	struct store *store = NULL;
	struct journal *journal = NULL;
	char journal_path[PATH_MAX];
	uint64_t replayed;
	unsigned owner = 0;
	struct config cfg;
	sigset_t signals;
	int64_t watchdog_ms;
	int rc, sig, status = 1;

	if (!config_setup(&cfg, CONFIG_API, argc, argv, load_tokens, &status))
		return status;
	log_init(cfg.progname, cfg.log_level);
	proc_start(&cfg);

	/* A shell's background job starts with SIGINT ignored: undo that. */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	/*
	 * Every thread started from here on inherits this mask, so these
	 * signals reach only the sigtimedwait below.
	 */
	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);

	rc = store_open(&store, cfg.data_dir, cfg.map_size, 0);
	if (rc != 0) {
		log_error("could not open the LMDB environment in %s: %s",
		    cfg.data_dir, store_strerror(rc));
		goto out;
	}
	if (store_upgraded_from(store) != 0)
		log_info("upgraded the LMDB environment in %s from schema "
		    "version %u to %d", cfg.data_dir, store_upgraded_from(store),
		    STORE_SCHEMA_VERSION);
	/*
	 * Orders answered 201 before a crash or power cut may be only in
	 * the journal: apply them before anything else.
	 */
	if ((size_t)snprintf(journal_path, sizeof(journal_path), "%s/journal",
	    cfg.data_dir) >= sizeof(journal_path)) {
		log_error("the data directory's name is too long: %s",
		    cfg.data_dir);
		goto out_store;
	}
	rc = orderlog_recover(store, journal_path,
	    cfg.journal_size - cfg.journal_size % 4096, &journal, &replayed);
	if (rc != 0) {
		log_error("could not open the journal %s: %s", journal_path,
		    rc == EBUSY ? "another order-api uses this data directory"
		    : store_strerror(rc));
		goto out_store;
	}
	if (replayed > 0)
		log_info("applied %llu orders from the journal %s to LMDB",
		    (unsigned long long)replayed, journal_path);
	/* After the replay: only then does LMDB hold every order. */
	rc = store_instance_claim(store, cfg.instance, true, &owner);
	if (rc == STORE_EINSTANCE) {
		log_error("the LMDB environment in %s holds instance %u's "
		    "orders, and this is instance %u (--instance): an "
		    "environment keeps the instance that created its first "
		    "order", cfg.data_dir, owner, cfg.instance);
		goto out_store;
	}
	if (rc != 0) {
		log_error("could not set the instance of the LMDB environment "
		    "in %s: %s", cfg.data_dir, store_strerror(rc));
		goto out_store;
	}
	if (cfg.instance != 0)
		log_info("instance %u: new orders get ids from ORD%llu on",
		    cfg.instance, (unsigned long long)
		    order_instance_first_id(cfg.instance));
	rc = committer_create(&committer, store, journal, cfg.queue,
	    cfg.commit_timeout_ms);
	if (rc != 0) {
		log_error("could not start the committer threads: %s",
		    store_strerror(rc));
		goto out_store;
	}
	mg_init_library(0);
	ctx.cfg = &cfg;
	ctx.store = store;
	ctx.committer = committer;
	ctx.auth = auth;
	store_set_idem_ttl(store, (int64_t)cfg.idempotency_hours * 3600 * 1000);
	atomic_init(&ctx.stopping, false);
	atomic_init(&ctx.access_log, cfg.access_log);
	if (http_start(&srv, &ctx) != 0)
		goto out_committer;
	log_info("serving http://%s:%u/ with %u threads; data in %s, queue %s",
	    cfg.listen_addr, cfg.listen_port, cfg.threads, cfg.data_dir,
	    cfg.queue);
	proc_ready();
	notify_ready("serving");

	/*
	 * The main loop: signals, the watchdog while this thread runs, and
	 * the store: one whose environment became unusable (a failed write of
	 * LMDB's meta page) fails every request until it is opened again, so
	 * the process ends, to be started afresh.
	 */
	watchdog_ms = notify_watchdog_interval_ms();
	for (;;) {
		int64_t wait_ms = watchdog_ms > 0 && watchdog_ms < STORE_CHECK_MS
		    ? watchdog_ms : STORE_CHECK_MS;
		struct timespec ts = { .tv_sec = wait_ms / 1000,
			.tv_nsec = (wait_ms % 1000) * 1000000 };

		sig = sigtimedwait(&signals, NULL, &ts);
		if (watchdog_ms > 0)
			notify_watchdog();
		if ((rc = committer_broken(committer)) != 0) {
			log_error("could not go on: the journal %s could not be "
			    "written (%s); exiting with status %d to recover "
			    "from it when started again", journal_path,
			    strerror(rc), API_EXIT_STORE);
			break;
		}
		if ((rc = store_broken(store)) != 0) {
			log_error("could not go on: the LMDB environment in %s is "
			    "unusable (%s); exiting with status %d to be "
			    "started again", cfg.data_dir, store_strerror(rc),
			    API_EXIT_STORE);
			break;
		}
		if (sig == SIGHUP) {
			log_info("SIGHUP: reopening the log, reading the "
			    "settings again");
			if (log_reopen() != 0)
				log_error("could not reopen log file %s: %s",
				    cfg.log_file, strerror(errno));
			config_reload(&cfg);
			atomic_store(&ctx.access_log, cfg.access_log);
		} else if (sig == SIGTERM || sig == SIGINT) {
			break;
		}
	}
	if (rc != 0) {
		status = API_EXIT_STORE;
	} else {
		log_info("stopping on %s: finishing the requests in hand",
		    sig == SIGTERM ? "SIGTERM" : "SIGINT");
		status = 0;
	}
	notify_stopping();
	atomic_store(&ctx.stopping, true);

	http_stop(srv);
out_committer:
	/*
	 * After the server: handlers still waiting on a commit get it. A
	 * committer that cannot begin a transaction (another process holds
	 * LMDB's writer lock and does not let go) is not waited for past
	 * the commit timeout: every create has its answer by then, and the
	 * store cannot be closed under it.
	 */
	if ((rc = committer_destroy(committer,
	    cfg.commit_timeout_ms + 1000)) != 0 && rc != ETIMEDOUT) {
		/* Logged; the orders wait in the journal for the next start. */
		if (status != API_EXIT_STORE)
			status = 1;
	} else if (rc != 0) {
		log_error("could not stop cleanly: no LMDB write transaction "
		    "could begin in %u ms (another process holds the writer "
		    "lock); exiting without closing the environment",
		    cfg.commit_timeout_ms + 1000);
		if (status != API_EXIT_STORE)
			status = 1;
		goto out;
	}
	mg_exit_library();
out_store:
	journal_close(journal);
	store_close(store);
out:
	if (status == 0)
		log_info("stopped");
	auth_free(auth);
	proc_finish();
	return status;
}
