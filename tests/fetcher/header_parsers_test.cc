// WWW-Authenticate, Link, Content-Range, Retry-After and URL handling.
#include <gtest/gtest.h>

#include "fetcher/content_range.h"
#include "fetcher/link_header.h"
#include "fetcher/retry_after.h"
#include "fetcher/url.h"
#include "fetcher/www_authenticate.h"

namespace hoist {
namespace {

TEST(WwwAuthenticate, BearerWithCommaInQuotedScope) {
  auto c = ParseWwwAuthenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push")");
  ASSERT_TRUE(c) << c.error().message();
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].scheme, "bearer");
  EXPECT_EQ((*c)[0].Param("realm"), "https://auth.docker.io/token");
  EXPECT_EQ((*c)[0].Param("service"), "registry.docker.io");
  EXPECT_EQ((*c)[0].Param("scope"), "repository:a/b:pull,push");
  EXPECT_EQ((*c)[0].params.size(), 3u);
}

TEST(WwwAuthenticate, EscapesSpacesAndCase) {
  auto c = ParseWwwAuthenticate(
      R"(BEARER  Realm = "http://x/t?a=1,b=2" , Service=reg, error="insufficient_scope", x="a\"b\\c")");
  ASSERT_TRUE(c) << c.error().message();
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].scheme, "bearer");
  EXPECT_EQ((*c)[0].Param("realm"), "http://x/t?a=1,b=2");
  EXPECT_EQ((*c)[0].Param("service"), "reg");
  EXPECT_EQ((*c)[0].Param("error"), "insufficient_scope");
  EXPECT_EQ((*c)[0].Param("x"), "a\"b\\c");
}

TEST(WwwAuthenticate, Basic) {
  auto c = ParseWwwAuthenticate(R"(Basic realm="Registry Realm")");
  ASSERT_TRUE(c);
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].scheme, "basic");
  EXPECT_EQ((*c)[0].Param("realm"), "Registry Realm");
}

TEST(WwwAuthenticate, SeveralChallengesInOneHeader) {
  auto c = ParseWwwAuthenticate(
      R"(Basic realm="a,b", Bearer realm="https://t/x",service="s", Negotiate)");
  ASSERT_TRUE(c) << c.error().message();
  ASSERT_EQ(c->size(), 3u);
  EXPECT_EQ((*c)[0].scheme, "basic");
  EXPECT_EQ((*c)[0].Param("realm"), "a,b");
  EXPECT_EQ((*c)[1].scheme, "bearer");
  EXPECT_EQ((*c)[1].Param("realm"), "https://t/x");
  EXPECT_EQ((*c)[1].Param("service"), "s");
  EXPECT_EQ((*c)[2].scheme, "negotiate");
}

TEST(WwwAuthenticate, Token68) {
  auto c = ParseWwwAuthenticate("Negotiate dXNlcjpwYXNz==");
  ASSERT_TRUE(c) << c.error().message();
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].token68, "dXNlcjpwYXNz==");
  EXPECT_TRUE((*c)[0].params.empty());
}

TEST(WwwAuthenticate, BareScheme) {
  auto c = ParseWwwAuthenticate("Bearer");
  ASSERT_TRUE(c);
  EXPECT_EQ((*c)[0].scheme, "bearer");
  EXPECT_TRUE((*c)[0].params.empty());
}

TEST(WwwAuthenticate, Malformed) {
  for (const char* bad :
       {"", "  ,  ", R"(Bearer realm="unterminated)", "=x", R"(Bearer realm="a" junk="b)"}) {
    auto c = ParseWwwAuthenticate(bad);
    ASSERT_FALSE(c) << bad;
    EXPECT_EQ(c.error().code(), EINVAL) << bad;
    EXPECT_TRUE(c.error().message().starts_with("malformed WWW-Authenticate header"))
        << c.error().message();
  }
}

TEST(LinkHeader, RelativeNext) {
  auto next = ParseLinkNext(R"(</v2/_catalog?last=b&n=2>; rel="next")",
                            "http://localhost:5000/v2/_catalog?n=2");
  ASSERT_TRUE(next) << next.error().message();
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ(**next, "http://localhost:5000/v2/_catalog?last=b&n=2");
}

TEST(LinkHeader, AbsoluteAndSeveralLinks) {
  auto next = ParseLinkNext(
      R"(<https://r.io/v2/x/tags/list?last=1>; rel="prev", <https://r.io/v2/x/tags/list?last=9&n=5>; rel="first next")",
      "https://r.io/v2/x/tags/list");
  ASSERT_TRUE(next) << next.error().message();
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ(**next, "https://r.io/v2/x/tags/list?last=9&n=5");
}

TEST(LinkHeader, UnquotedRelAndNoNext) {
  auto next = ParseLinkNext("<p?x=1>;rel=next", "https://r.io/v2/a/tags/list");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->value(), "https://r.io/v2/a/tags/p?x=1");
  auto none = ParseLinkNext(R"(</v2/x>; rel="prev")", "https://r.io/");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

TEST(LinkHeader, Malformed) {
  auto bad = ParseLinkNext(R"(/v2/x; rel="next")", "https://r.io/");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), EINVAL);
  EXPECT_FALSE(ParseLinkNext(R"(</v2/x; rel="next")", "https://r.io/"));
}

TEST(ContentRange, Forms) {
  auto a = ParseContentRange("bytes 0-499/1234");
  ASSERT_TRUE(a);
  EXPECT_EQ(*a->first, 0u);
  EXPECT_EQ(*a->last, 499u);
  EXPECT_EQ(*a->total, 1234u);
  auto b = ParseContentRange("bytes 10-19/*");
  ASSERT_TRUE(b);
  EXPECT_EQ(*b->first, 10u);
  EXPECT_EQ(*b->last, 19u);
  EXPECT_FALSE(b->total.has_value());
  auto c = ParseContentRange("bytes */1234");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->first.has_value());
  EXPECT_EQ(*c->total, 1234u);
  auto big = ParseContentRange("bytes 18446744073709551614-18446744073709551614/*");
  ASSERT_TRUE(big);
  EXPECT_EQ(*big->first, 18446744073709551614ull);
}

TEST(ContentRange, Malformed) {
  for (const char* bad :
       {"", "bytes", "bytes 5-4/10", "bytes 0-10/10", "items 0-1/2", "bytes 0-1", "bytes a-b/3",
        "bytes -1-2/3", "bytes */*", "bytes 0-99999999999999999999/*", "bytes 0-1/2x"}) {
    auto r = ParseContentRange(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_TRUE(r.error().message().starts_with("malformed Content-Range")) << bad;
  }
}

TEST(RetryAfter, Seconds) {
  auto r = ParseRetryAfter(" 120 ", 0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->count(), 120);
}

TEST(RetryAfter, HttpDateForms) {
  // 1445412480 = Wed, 21 Oct 2015 07:28:00 GMT.
  EXPECT_EQ(*ParseHttpDate("Wed, 21 Oct 2015 07:28:00 GMT"), 1445412480);
  EXPECT_EQ(*ParseHttpDate("Wednesday, 21-Oct-15 07:28:00 GMT"), 1445412480);
  EXPECT_EQ(*ParseHttpDate("Wed Oct 21 07:28:00 2015"), 1445412480);
  auto r = ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 30);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->count(), 30);
  auto past = ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 + 30);
  ASSERT_TRUE(past);
  EXPECT_EQ(past->count(), 0);
}

TEST(RetryAfter, Malformed) {
  for (const char* bad : {"", "-1", "1.5", "soon", "Wed, 21 Foo 2015 07:28:00 GMT",
                          "Wed, 21 Oct 2015 25:28:00 GMT"}) {
    auto r = ParseRetryAfter(bad, 0);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), EINVAL);
  }
}

TEST(Url, ParseAndOrigin) {
  auto u = Url::Parse("HTTPS://Registry.IO/v2/?a=b");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "registry.io");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->path_and_query, "/v2/?a=b");
  EXPECT_EQ(u->Origin(), "https://registry.io:443");
  EXPECT_EQ(u->String(), "https://registry.io/v2/?a=b");
  auto v6 = Url::Parse("http://[::1]:5000");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "[::1]");
  EXPECT_EQ(v6->port, 5000);
  EXPECT_EQ(v6->path_and_query, "/");
  EXPECT_FALSE(Url::Parse("ftp://x/"));
  EXPECT_FALSE(Url::Parse("http://x:99999/"));
  EXPECT_FALSE(Url::Parse("no-scheme/x"));
}

TEST(Url, SameOrigin) {
  EXPECT_TRUE(SameOrigin("https://r.io/a", "https://r.io:443/b"));
  EXPECT_FALSE(SameOrigin("https://r.io/a", "http://r.io/a"));
  EXPECT_FALSE(SameOrigin("https://r.io/a", "https://r.io:5000/a"));
  EXPECT_FALSE(SameOrigin("https://r.io/a", "https://cdn.r.io/a"));
}

TEST(Url, Resolve) {
  const char* base = "http://localhost:5000/v2/a/blobs/uploads/";
  EXPECT_EQ(*ResolveUrl(base, "/v2/a/blobs/uploads/u1?_state=x"),
            "http://localhost:5000/v2/a/blobs/uploads/u1?_state=x");
  EXPECT_EQ(*ResolveUrl(base, "u2?s=1"), "http://localhost:5000/v2/a/blobs/uploads/u2?s=1");
  EXPECT_EQ(*ResolveUrl(base, "../x"), "http://localhost:5000/v2/a/blobs/x");
  EXPECT_EQ(*ResolveUrl(base, "?q=1"), "http://localhost:5000/v2/a/blobs/uploads/?q=1");
  EXPECT_EQ(*ResolveUrl(base, "//cdn.io/p"), "http://cdn.io/p");
  EXPECT_EQ(*ResolveUrl(base, "https://s3.io:8443/b?sig=1"), "https://s3.io:8443/b?sig=1");
}

TEST(Url, AppendQuery) {
  EXPECT_EQ(AppendQuery("http://h/u", "digest", "sha256:ab"), "http://h/u?digest=sha256%3Aab");
  EXPECT_EQ(AppendQuery("http://h/u?_state=x", "n", "1 2"), "http://h/u?_state=x&n=1%202");
}

}  // namespace
}  // namespace hoist
