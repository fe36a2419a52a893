/*
 * ceiling: the smallest civetweb server that does what order-api does per
 * request, used by bench/run.py as the reference ("the ceiling") that every
 * benchmark figure is divided by.
 *
 *   GET  /hello  -> 200 {"message": "hello"}
 *   POST /echo   -> reads Content-Length bytes, parses them with cJSON,
 *                   200 {"ok": true, "user_id": N, "items": K}
 *
 * Settings that matter for throughput (the same as order-api's):
 * keep-alive on, tcp_nodelay=1, one civetweb thread per connection
 * (-t N, N >= the benchmark's connections), and every response written with
 * a single mg_write (status line, headers and body in one buffer), so Nagle
 * and delayed ACKs never meet.
 *
 * usage: ceiling [-l ADDR:PORT] [-t THREADS]
 * Prints "ceiling: serving http://ADDR:PORT/ with N threads (civetweb V,
 * cJSON V)" on stdout once listening; SIGTERM or SIGINT stops it (exit 0).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <civetweb.h>

#define MAX_BODY (64 * 1024)

/* Write status, headers and body with one mg_write. */
static int reply(struct mg_connection *conn, int status, const char *reason,
    const char *body)
{
	char buf[1024];
	size_t blen = strlen(body);
	int n = snprintf(buf, sizeof buf,
	    "HTTP/1.1 %d %s\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: %zu\r\n"
	    "\r\n%s",
	    status, reason, blen, body);
	if (n < 0 || (size_t)n >= sizeof buf)
		return 500;
	mg_write(conn, buf, (size_t)n);
	return status;
}

static int hello(struct mg_connection *conn, void *cbdata)
{
	(void)cbdata;
	const struct mg_request_info *ri = mg_get_request_info(conn);
	if (strcmp(ri->request_method, "GET") != 0)
		return reply(conn, 405, "Method Not Allowed",
		    "{\"detail\": \"GET only\"}");
	return reply(conn, 200, "OK", "{\"message\": \"hello\"}");
}

static int echo(struct mg_connection *conn, void *cbdata)
{
	(void)cbdata;
	const struct mg_request_info *ri = mg_get_request_info(conn);
	if (strcmp(ri->request_method, "POST") != 0)
		return reply(conn, 405, "Method Not Allowed",
		    "{\"detail\": \"POST only\"}");
	long long len = ri->content_length;
	if (len < 0)
		return reply(conn, 411, "Length Required",
		    "{\"detail\": \"Content-Length required\"}");
	if (len > MAX_BODY)
		return reply(conn, 413, "Payload Too Large",
		    "{\"detail\": \"body too large\"}");

	char body[MAX_BODY];
	size_t got = 0;
	while (got < (size_t)len) {
		int r = mg_read(conn, body + got, (size_t)len - got);
		if (r <= 0)
			break; /* timeout, peer gone or shutdown */
		got += (size_t)r;
	}
	if (got != (size_t)len)
		return reply(conn, 400, "Bad Request",
		    "{\"detail\": \"short body\"}");

	cJSON *doc = cJSON_ParseWithLength(body, got);
	if (doc == NULL)
		return reply(conn, 400, "Bad Request",
		    "{\"detail\": \"invalid JSON\"}");
	const cJSON *user = cJSON_GetObjectItemCaseSensitive(doc, "user_id");
	const cJSON *items = cJSON_GetObjectItemCaseSensitive(doc, "item_ids");
	if (!cJSON_IsNumber(user) || !cJSON_IsArray(items)) {
		cJSON_Delete(doc);
		return reply(conn, 400, "Bad Request",
		    "{\"detail\": \"user_id and item_ids required\"}");
	}
	char out[128];
	snprintf(out, sizeof out, "{\"ok\": true, \"user_id\": %.0f, \"items\": %d}",
	    user->valuedouble, cJSON_GetArraySize(items));
	cJSON_Delete(doc);
	return reply(conn, 200, "OK", out);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ceiling [-l ADDR:PORT] [-t THREADS]\n"
	           "  -l ADDR:PORT  listen here (default 127.0.0.1:8080)\n"
	           "  -t THREADS    civetweb worker threads, >= connections "
	           "(default 64)\n");
}

int main(int argc, char **argv)
{
	const char *listen = "127.0.0.1:8080";
	long threads = 64;
	int c;
	while ((c = getopt(argc, argv, "l:t:h")) != -1) {
		switch (c) {
		case 'l':
			listen = optarg;
			break;
		case 't': {
			char *end;
			errno = 0;
			threads = strtol(optarg, &end, 10);
			if (errno || *end || threads < 1 || threads > 4096) {
				fprintf(stderr, "ceiling: bad -t %s\n", optarg);
				return 2;
			}
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	/* Block the stop signals before civetweb starts its threads, so they
	 * inherit the mask and only sigwait() below sees them. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	char nthreads[32];
	snprintf(nthreads, sizeof nthreads, "%ld", threads);
	const char *options[] = {
		"listening_ports", listen,
		"num_threads", nthreads,
		"enable_keep_alive", "yes",
		"keep_alive_timeout_ms", "5000",
		"request_timeout_ms", "10000",
		"tcp_nodelay", "1",
		NULL,
	};

	mg_init_library(0);
	struct mg_callbacks cb;
	memset(&cb, 0, sizeof cb);
	struct mg_context *ctx = mg_start(&cb, NULL, options);
	if (ctx == NULL) {
		fprintf(stderr, "ceiling: cannot listen on %s\n", listen);
		mg_exit_library();
		return 1;
	}
	mg_set_request_handler(ctx, "/hello", hello, NULL);
	mg_set_request_handler(ctx, "/echo", echo, NULL);

	printf("ceiling: serving http://%s/ with %ld threads (civetweb %s, "
	       "cJSON %s)\n", listen, threads, mg_version(), cJSON_Version());
	fflush(stdout);

	int sig = 0;
	sigwait(&stop, &sig);
	mg_stop(ctx);
	mg_exit_library();
	return 0;
}
