// The rank-0 text channel (comm/text_channel.h): every message a leader sends
// reaches world rank 0, whole and in the order that leader sent it, whatever
// the interleaving between leaders; poll() never blocks and finds nothing once
// all has been taken.
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <mpi.h>

#include "comm/text_channel.h"
#include "mpi_helpers.h"

namespace bs::test {
namespace {

// Message k of rank r: its text carries both, and every 16th is long (past
// Open MPI's eager limit, so it travels by rendezvous).
std::string message(int r, int k) {
  std::string text = std::to_string(r) + ":" + std::to_string(k);
  if (k % 16 == 7) text += std::string(200000, static_cast<char>('a' + r % 26));
  return text;
}

TEST(TextChannel, EveryMessageReachesRankZeroWholeAndInOrder) {
  constexpr int kPerRank = 40;
  const int me = world_rank(), n = world_size();
  TextChannel ch;
  if (me != 0) {
    for (int k = 0; k < kPerRank; ++k) ch.send(k % 2 ? TextChannel::kProgress : TextChannel::kRunDone, message(me, k));
    ch.send(TextChannel::kGroupDone, std::to_string(me));
  } else {
    std::map<int, std::vector<std::string>> got;
    int done = 0;
    while (done < n - 1) {
      auto [tag, text] = ch.wait();
      if (tag == TextChannel::kGroupDone) {
        ++done;
        continue;
      }
      const int r = std::stoi(text.substr(0, text.find(':')));
      const int k = static_cast<int>(got[r].size());
      EXPECT_EQ(tag, k % 2 ? TextChannel::kProgress : TextChannel::kRunDone) << "rank " << r << " message " << k;
      got[r].push_back(text);
    }
    for (int r = 1; r < n; ++r) {
      ASSERT_EQ(got[r].size(), static_cast<size_t>(kPerRank)) << "rank " << r;
      for (int k = 0; k < kPerRank; ++k) {
        const std::string& text = got[r][static_cast<size_t>(k)];
        EXPECT_TRUE(text == message(r, k)) << "rank " << r << " message " << k << " arrived as " << text.size()
                                           << " bytes starting '" << text.substr(0, 12) << "'";
      }
    }
    EXPECT_TRUE(ch.poll().empty()) << "nothing left after every group said done";
  }
  ch.drain();
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace
}  // namespace bs::test
