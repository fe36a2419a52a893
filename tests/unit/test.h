/* test.h: assertions that abort with file, line, test and expression. */
#ifndef OP_TEST_H
#define OP_TEST_H
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
static const char *test_current = "(none)";
static void (*test_cleanup)(void);	/* run before abort, e.g. mq_unlink */
#define TEST(name) static void name(void)
#define RUN(name) (test_current = #name, name(), fprintf(stderr, "ok %s\n", #name))
#define test_assert_msg(cond, ...) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: %s: assertion failed: %s: ", __FILE__, \
	    __LINE__, test_current, #cond); fprintf(stderr, __VA_ARGS__); \
	fputc('\n', stderr); if (test_cleanup) test_cleanup(); abort(); } } while (0)
#define test_assert(cond) test_assert_msg(cond, "%s", "false")
static inline char *test_mkdtemp(char buf[256]) {
	const char *t = getenv("TMPDIR");
	snprintf(buf, 256, "%s/op-unit-XXXXXX", t && *t ? t : "/tmp");
	test_assert_msg(mkdtemp(buf) != NULL, "mkdtemp %s", buf); return buf; }
static inline int test_rm_one(const char *p, const struct stat *st, int f,
    struct FTW *w) { (void)st; (void)f; (void)w; return remove(p); }
static inline int test_rmtree(const char *dir) {
	return nftw(dir, test_rm_one, 16, FTW_DEPTH | FTW_PHYS); }
#endif
