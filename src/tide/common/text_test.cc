#include "tide/common/text.h"

#include <gtest/gtest.h>

#include <string>

namespace tide {
namespace {

TEST(ValidUtf8, AcceptsWellFormedTextAndRefusesEveryKindOfMalformedSequence) {
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("/chat/v1/completions?x=1"));
  EXPECT_TRUE(valid_utf8("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80"));  // é € 😀
  EXPECT_FALSE(valid_utf8("/\xff/x"));
  EXPECT_FALSE(valid_utf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(valid_utf8("\xE0\x80\xAF"));      // overlong
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));      // a surrogate
  EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(valid_utf8("\xC3"));              // cut short
  EXPECT_FALSE(valid_utf8("\xE2\x82"));
  EXPECT_FALSE(valid_utf8("\x80"));  // a lone continuation byte
}

TEST(Clip, KeepsShortTextAndCutsLongTextOnACharacterBoundaryWithItsSize) {
  EXPECT_EQ(clip("chat"), "chat");
  const std::string long_name(10'000'000, 'x');
  const std::string clipped = clip(long_name);
  EXPECT_EQ(clipped, std::string(200, 'x') + "... (10000000 bytes)");
  // A two-byte character that would straddle the limit is left out whole.
  EXPECT_EQ(clip("ab\xC3\xA9", 3), "ab... (4 bytes)");
  EXPECT_EQ(clip("a\xff"
                 "b"),
            "a?b");
}

}  // namespace
}  // namespace tide
