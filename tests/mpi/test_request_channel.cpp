// The run queue's transport (comm/request_channel.h): every request reaches
// world rank 0 and is answered to its sender, while the same ranks send
// console text over the TextChannel; neither channel ever receives the
// other's messages (the request channel has its own communicator).
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <mpi.h>

#include "comm/request_channel.h"
#include "comm/text_channel.h"
#include "mpi_helpers.h"

namespace bs::test {
namespace {

constexpr int kAsk = 1, kBye = 2, kPerRank = 30;

// Rank 0: answers each ask with 1000 * rank + k, takes the text, until every
// other rank said bye on both channels.
void serve(RequestChannel& rc, TextChannel& tc, int others) {
  int byes = 0, texts_done = 0;
  std::vector<int> asked(static_cast<size_t>(others + 1), 0), texts(static_cast<size_t>(others + 1), 0);
  while (byes < others || texts_done < others) {
    while (auto req = rc.poll()) {
      const int r = req->body[1];
      ASSERT_EQ(r, req->source);
      if (req->body[0] == kBye) {
        EXPECT_FALSE(req->wants_answer);
        ++byes;
        continue;
      }
      ASSERT_TRUE(req->wants_answer);
      EXPECT_EQ(req->body[2], asked[static_cast<size_t>(r)]++) << "rank " << r << "'s asks in order";
      rc.answer(req->source, 1000 * r + req->body[2]);
    }
    for (auto& [tag, text] : tc.poll()) {
      if (tag == TextChannel::kGroupDone) {
        ++texts_done;
        continue;
      }
      const int r = std::stoi(text.substr(0, text.find(':')));
      EXPECT_EQ(text, std::to_string(r) + ":" + std::to_string(texts[static_cast<size_t>(r)]++));
    }
  }
  for (int r = 1; r <= others; ++r) {
    EXPECT_EQ(asked[static_cast<size_t>(r)], kPerRank);
    EXPECT_EQ(texts[static_cast<size_t>(r)], kPerRank);
  }
}

TEST(RequestChannel, AnswersEveryAskAndNeverMixesWithConsoleText) {
  const int me = world_rank(), n = world_size();
  RequestChannel rc;
  TextChannel tc;
  if (me == 0) {
    serve(rc, tc, n - 1);
    EXPECT_FALSE(rc.poll().has_value());
    EXPECT_TRUE(tc.poll().empty());
  } else {
    for (int k = 0; k < kPerRank; ++k) {
      tc.send(TextChannel::kProgress, std::to_string(me) + ":" + std::to_string(k));
      EXPECT_EQ(rc.ask({kAsk, me, k}), 1000 * me + k);
    }
    rc.tell({kBye, me, 0});
    tc.send(TextChannel::kGroupDone, std::to_string(me));
  }
  tc.drain();
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(RequestChannel, BroadcastGivesTheRootsValueToTheGroup) {
  auto group = split(world_rank() % 2);
  const int got = RequestChannel::broadcast(group->rank() == 0 ? 40 + world_rank() : -1, 0, group->comm());
  EXPECT_EQ(got, 40 + world_rank() % 2);
}

}  // namespace
}  // namespace bs::test
