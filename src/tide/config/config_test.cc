#include <gtest/gtest.h>
TEST(ConfigPlaceholder, ToBeReplaced) {}
