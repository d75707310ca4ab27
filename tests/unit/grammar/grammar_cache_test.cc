#include "worker/grammar/grammar_cache.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"

namespace ringserve::grammar {
namespace {

// Compiles `schema`, counting the compiles.
struct CountingCompiler {
  int compiles = 0;
  GrammarOr operator()(const std::string& schema) {
    ++compiles;
    return Grammar::FromSchema(schema);
  }
};

std::string SchemaKey(const std::string& schema) { return GrammarKey("schema").Add(schema).key(); }

TEST(GrammarCacheTest, HitReturnsTheSameGrammarWithoutCompiling) {
  GrammarCache cache(8, 1 << 20);
  CountingCompiler compiler;
  const std::string schema = R"({"type": "integer"})";
  GrammarOr first = cache.Get(SchemaKey(schema), [&] { return compiler(schema); });
  GrammarOr second = cache.Get(SchemaKey(schema), [&] { return compiler(schema); });
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->get(), second->get());
  EXPECT_EQ(compiler.compiles, 1);
  const GrammarCache::Counts counts = cache.counts();
  EXPECT_EQ(counts.hits, 1);
  EXPECT_EQ(counts.misses, 1);
  EXPECT_EQ(counts.entries, 1);
}

TEST(GrammarCacheTest, KeepsCompileErrors) {
  GrammarCache cache(8, 1 << 20);
  CountingCompiler compiler;
  const std::string schema = R"({"type": "integer", "uniqueItems": true})";
  for (int i = 0; i < 3; ++i) {
    GrammarOr grammar = cache.Get(SchemaKey(schema), [&] { return compiler(schema); });
    EXPECT_EQ(grammar.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(grammar.status().message().find("uniqueItems"), std::string::npos);
  }
  EXPECT_EQ(compiler.compiles, 1);
}

TEST(GrammarCacheTest, EvictsTheLeastRecentlyUsed) {
  GrammarCache cache(2, 1 << 20);
  CountingCompiler compiler;
  const std::string a = R"({"type": "integer"})";
  const std::string b = R"({"type": "string"})";
  const std::string c = R"({"type": "boolean"})";
  auto get = [&](const std::string& schema) {
    return cache.Get(SchemaKey(schema), [&] { return compiler(schema); });
  };
  ASSERT_TRUE(get(a).ok());
  ASSERT_TRUE(get(b).ok());
  ASSERT_TRUE(get(a).ok());  // b is now the oldest
  ASSERT_TRUE(get(c).ok());  // evicts b
  EXPECT_EQ(compiler.compiles, 3);
  ASSERT_TRUE(get(a).ok());
  ASSERT_TRUE(get(c).ok());
  EXPECT_EQ(compiler.compiles, 3);
  ASSERT_TRUE(get(b).ok());
  EXPECT_EQ(compiler.compiles, 4);
  EXPECT_EQ(cache.counts().evictions, 2);
  EXPECT_EQ(cache.counts().entries, 2);
}

TEST(GrammarCacheTest, BoundsTheBytesOfItsKeys) {
  const std::string small = R"({"type": "integer"})";
  const std::string large =
      R"({"type": "string", "description": ")" + std::string(300, 'x') + "\"}";
  GrammarCache cache(100, SchemaKey(large).size() + SchemaKey(small).size() - 1);
  CountingCompiler compiler;
  auto get = [&](const std::string& schema) {
    return cache.Get(SchemaKey(schema), [&] { return compiler(schema); });
  };
  ASSERT_TRUE(get(small).ok());
  ASSERT_TRUE(get(large).ok());  // both do not fit: small goes
  EXPECT_EQ(cache.counts().entries, 1);
  ASSERT_TRUE(get(large).ok());
  EXPECT_EQ(compiler.compiles, 2);
  // A key larger than the whole budget is compiled every time and never kept.
  GrammarCache tiny(100, 8);
  ASSERT_TRUE(tiny.Get(SchemaKey(small), [&] { return compiler(small); }).ok());
  ASSERT_TRUE(tiny.Get(SchemaKey(small), [&] { return compiler(small); }).ok());
  EXPECT_EQ(compiler.compiles, 4);
  EXPECT_EQ(tiny.counts().entries, 0);
}

TEST(GrammarCacheTest, KeysTellTheirPartsApart) {
  EXPECT_NE(GrammarKey("a").Add("bc").key(), GrammarKey("ab").Add("c").key());
  EXPECT_NE(GrammarKey("tools").Add("x").Add("").key(), GrammarKey("tools").Add("").Add("x").key());
  EXPECT_NE(GrammarKey("k").Add(int64_t{1}).key(), GrammarKey("k").Add("1").Add("").key());
  EXPECT_EQ(GrammarKey("k").Add(int64_t{12}).key(), GrammarKey("k").Add(int64_t{12}).key());
}

TEST(GrammarCacheTest, ConcurrentGetsShareOneCache) {
  GrammarCache cache(4, 1 << 20);
  const std::string schemas[] = {R"({"type": "integer"})", R"({"type": "string"})",
                                 R"({"type": "boolean"})", R"({"type": "null"})",
                                 R"({"type": "number"})",  R"({"type": "array"})"};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const std::string& schema = schemas[(i * (t + 1)) % 6];
        GrammarOr grammar =
            cache.Get(SchemaKey(schema), [&] { return Grammar::FromSchema(schema); });
        EXPECT_TRUE(grammar.ok()) << grammar.status();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const GrammarCache::Counts counts = cache.counts();
  EXPECT_EQ(counts.hits + counts.misses, 800);
  EXPECT_LE(counts.entries, 4);
}

}  // namespace
}  // namespace ringserve::grammar
