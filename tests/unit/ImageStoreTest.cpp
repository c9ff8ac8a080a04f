// The image store on disk: records, lookups, tags, garbage, and what load() makes of the state a
// crash leaves behind. Layer directories and blobs are fakes made by the test (no root needed).
#include "oci/image/ImageStore.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace monocri::oci {
namespace {

using Json = nlohmann::json;

Digest digestOf(const std::string& text) {
  return Digest::ofBytes(text);
}

// A digest with chosen leading hex digits, for prefix lookups.
Digest digestStartingWith(const std::string& prefix, char fill) {
  return *Digest::parse("sha256:" + prefix + std::string(64 - prefix.size(), fill));
}

bool exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

std::string readText(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/monocri-imagestore-XXXXXX";
    root_ = mkdtemp(tmpl);
    store_ = std::make_unique<ImageStore>(root_);
    std::vector<std::string> notes;
    ASSERT_EQ(store_->load(notes), "");
    EXPECT_TRUE(notes.empty());
  }
  void TearDown() override { std::system(("rm -rf " + root_).c_str()); }

  // A fresh store over the same directory, as after a restart.
  std::vector<std::string> reload() {
    store_ = std::make_unique<ImageStore>(root_);
    std::vector<std::string> notes;
    EXPECT_EQ(store_->load(notes), "");
    return notes;
  }

  // An unpacked layer: a directory with a file in it, and its record.
  Digest makeLayer(const std::string& name) {
    const Digest diffId = digestOf("layer " + name);
    const std::string dir = store_->layerPath(diffId);
    EXPECT_EQ(mkdir(dir.c_str(), 0755), 0) << dir;
    std::ofstream(dir + "/file") << name;
    LayerRecord record;
    record.diffId = diffId;
    record.blobDigest = digestOf("blob " + name);
    record.mediaType = "application/vnd.oci.image.layer.v1.tar+gzip";
    record.blobSize = 123;
    record.bytes = 4096;
    record.inodes = 2;
    EXPECT_EQ(store_->commitLayer(record), "");
    return diffId;
  }

  // An image whose config and manifest blobs are stored.
  ImageRecord makeImage(const std::string& name, std::vector<std::string> tags,
                        std::vector<Digest> layers, int64_t createdNs = 1,
                        std::optional<Digest> id = std::nullopt) {
    ImageRecord record;
    const std::string config = "config " + name;
    const std::string manifest = "manifest " + name;
    record.id = id.value_or(digestOf(config));
    record.manifestDigest = digestOf(manifest);
    EXPECT_EQ(store_->putBlob(record.id, config), "");
    EXPECT_EQ(store_->putBlob(record.manifestDigest, manifest), "");
    record.repoTags = std::move(tags);
    record.repoDigests = {"docker.io/library/" + name + "@" + record.manifestDigest.str()};
    record.diffIds = std::move(layers);
    record.size = 1000;
    record.user = "1000";
    record.platform = "linux/amd64";
    record.createdNs = createdNs;
    EXPECT_EQ(store_->commitImage(record), "");
    return record;
  }

  std::string imagePath(const Digest& id) const {
    return store_->directory() + "/images/" + std::string(id.hex()) + ".json";
  }

  std::string root_;
  std::unique_ptr<ImageStore> store_;
};

TEST_F(ImageStoreTest, LoadCreatesTheLayout) {
  EXPECT_EQ(store_->directory(), root_ + "/image");
  for (const char* sub : {"blobs/sha256", "ingest", "layers", "images"}) {
    struct stat st {};
    ASSERT_EQ(stat((root_ + "/image/" + sub).c_str(), &st), 0) << sub;
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << sub;
  }
  struct stat st {};
  ASSERT_EQ(stat((root_ + "/image/layers").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_TRUE(store_->list().empty());
  const Digest d = digestOf("x");
  EXPECT_EQ(store_->blobPath(d), root_ + "/image/blobs/sha256/" + std::string(d.hex()));
  EXPECT_EQ(store_->layerPath(d), root_ + "/image/layers/" + std::string(d.hex()));
  EXPECT_EQ(store_->unpackingPath(d), store_->layerPath(d) + ".unpacking");
  EXPECT_EQ(store_->ingestPath(d), root_ + "/image/ingest/" + std::string(d.hex()));
}

TEST_F(ImageStoreTest, BlobsAreWrittenOnceAndRead) {
  const Digest d = digestOf("manifest bytes");
  EXPECT_FALSE(store_->hasBlob(d));
  ASSERT_EQ(store_->putBlob(d, "manifest bytes"), "");
  EXPECT_TRUE(store_->hasBlob(d));
  EXPECT_EQ(store_->putBlob(d, "other"), "");  // already there: kept
  std::string out;
  ASSERT_EQ(store_->readBlob(d, 1024, out), "");
  EXPECT_EQ(out, "manifest bytes");
  EXPECT_NE(store_->readBlob(d, 4, out), "");  // larger than allowed
}

TEST_F(ImageStoreTest, FindsByIdHexTagDigestAndUniquePrefix) {
  const Digest layer = makeLayer("a");
  const ImageRecord busybox =
      makeImage("busybox", {"docker.io/library/busybox:latest", "docker.io/library/busybox:1"},
                {layer}, 1, digestStartingWith("abcd1", '0'));
  const ImageRecord other =
      makeImage("other", {"quay.io/o:1"}, {layer}, 2, digestStartingWith("abcd2", '0'));

  const std::string hex(busybox.id.hex());
  auto idOf = [&](const std::string& reference) {
    const ImageRecord* found = store_->find(reference);
    return found ? found->id.str() : std::string("(none)");
  };
  EXPECT_EQ(idOf(busybox.id.str()), busybox.id.str());
  EXPECT_EQ(idOf(hex), busybox.id.str());
  EXPECT_EQ(idOf("docker.io/library/busybox:latest"), busybox.id.str());
  EXPECT_EQ(idOf("docker.io/library/busybox:1"), busybox.id.str());
  EXPECT_EQ(idOf(busybox.repoDigests[0]), busybox.id.str());
  EXPECT_EQ(idOf("quay.io/o:1"), other.id.str());
  EXPECT_EQ(idOf("abcd1"), busybox.id.str());
  EXPECT_EQ(idOf("sha256:abcd10"), busybox.id.str());
  EXPECT_EQ(idOf("abcd2"), other.id.str());
  // Ambiguous, too short, not hex, not lowercase, unknown.
  EXPECT_EQ(idOf("abcd"), "(none)");
  EXPECT_EQ(idOf("sha256:abcd"), "(none)");
  EXPECT_EQ(idOf("abc"), "(none)");
  EXPECT_EQ(idOf("ABCD1"), "(none)");
  EXPECT_EQ(idOf("abcd1x"), "(none)");
  EXPECT_EQ(idOf("docker.io/library/busybox:2"), "(none)");
  EXPECT_EQ(idOf("busybox"), "(none)");
  EXPECT_EQ(idOf(""), "(none)");
  ASSERT_NE(store_->findById(other.id), nullptr);
  EXPECT_EQ(store_->findById(other.id)->repoTags, std::vector<std::string>{"quay.io/o:1"});
  EXPECT_EQ(store_->list().size(), 2u);
}

TEST_F(ImageStoreTest, RecordsSurviveARestart) {
  const Digest l1 = makeLayer("1");
  const Digest l2 = makeLayer("2");
  ImageRecord image = makeImage("app", {"quay.io/app:1"}, {l1, l2}, 42);
  image.indexDigest = digestOf("index app");
  ASSERT_EQ(store_->putBlob(*image.indexDigest, "index app"), "");
  ASSERT_EQ(store_->commitImage(image), "");

  EXPECT_TRUE(reload().empty());
  const ImageRecord* found = store_->find("quay.io/app:1");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->id, image.id);
  EXPECT_EQ(found->manifestDigest, image.manifestDigest);
  EXPECT_EQ(found->indexDigest, image.indexDigest);
  EXPECT_EQ(found->diffIds, (std::vector<Digest>{l1, l2}));
  EXPECT_EQ(found->repoDigests, image.repoDigests);
  EXPECT_EQ(found->size, 1000);
  EXPECT_EQ(found->user, "1000");
  EXPECT_EQ(found->platform, "linux/amd64");
  EXPECT_EQ(found->createdNs, 42);
  const LayerRecord* layer = store_->layer(l2);
  ASSERT_NE(layer, nullptr);
  EXPECT_EQ(layer->blobDigest, digestOf("blob 2"));
  EXPECT_EQ(layer->blobSize, 123);
  EXPECT_EQ(layer->bytes, 4096u);
  EXPECT_EQ(layer->inodes, 2u);
  EXPECT_TRUE(store_->hasBlob(*image.indexDigest));
  EXPECT_TRUE(exists(store_->layerPath(l1) + "/file"));

  const StoreUsage usage = store_->usage();
  EXPECT_GE(usage.bytes, 2u * 4096u);
  EXPECT_EQ(usage.inodes, 2u * 2u + 3u);  // two layers, config + manifest + index blobs
}

TEST_F(ImageStoreTest, TagsMoveToTheImageCommittedLast) {
  const Digest layer = makeLayer("l");
  const ImageRecord old = makeImage("old", {"quay.io/app:latest", "quay.io/app:1"}, {layer});
  const ImageRecord fresh = makeImage("new", {"quay.io/app:latest"}, {layer});
  ASSERT_NE(store_->find("quay.io/app:latest"), nullptr);
  EXPECT_EQ(store_->find("quay.io/app:latest")->id, fresh.id);
  EXPECT_EQ(store_->findById(old.id)->repoTags, std::vector<std::string>{"quay.io/app:1"});
  // On disk too.
  reload();
  ASSERT_NE(store_->find("quay.io/app:latest"), nullptr);
  ASSERT_NE(store_->findById(old.id), nullptr);
  EXPECT_EQ(store_->find("quay.io/app:latest")->id, fresh.id);
  EXPECT_EQ(store_->findById(old.id)->repoTags, std::vector<std::string>{"quay.io/app:1"});
  EXPECT_EQ(Json::parse(readText(imagePath(old.id)))["repoTags"], Json::array({"quay.io/app:1"}));
}

TEST_F(ImageStoreTest, CommittingAnImageAgainMergesTagsAndKeepsItsAge) {
  const Digest layer = makeLayer("l");
  ImageRecord image = makeImage("app", {"quay.io/app:1"}, {layer}, 100);
  image.repoTags = {"quay.io/app:2"};
  image.repoDigests = {"quay.io/app@" + image.manifestDigest.str()};
  image.createdNs = 999;
  ASSERT_EQ(store_->commitImage(image), "");
  const ImageRecord* found = store_->findById(image.id);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->repoTags, (std::vector<std::string>{"quay.io/app:1", "quay.io/app:2"}));
  EXPECT_EQ(found->repoDigests.size(), 2u);
  EXPECT_EQ(found->createdNs, 100);
  EXPECT_EQ(store_->list().size(), 1u);
}

TEST_F(ImageStoreTest, UntagKeepsTheImage) {
  const Digest layer = makeLayer("l");
  const ImageRecord image = makeImage("app", {"quay.io/app:1", "quay.io/app:2"}, {layer});
  ASSERT_EQ(store_->untag(image.id, "quay.io/app:1"), "");
  EXPECT_EQ(store_->find("quay.io/app:1"), nullptr);
  ASSERT_NE(store_->find("quay.io/app:2"), nullptr);
  EXPECT_EQ(store_->find("quay.io/app:2")->id, image.id);
  EXPECT_EQ(store_->untag(digestOf("unknown"), "quay.io/app:2"), "");
  reload();
  EXPECT_EQ(store_->find("quay.io/app:1"), nullptr);
  ASSERT_NE(store_->findById(image.id), nullptr);
  EXPECT_EQ(store_->findById(image.id)->repoTags, std::vector<std::string>{"quay.io/app:2"});
}

TEST_F(ImageStoreTest, RemoveImageReturnsWhatNoOtherImageUses) {
  const Digest l1 = makeLayer("1");
  const Digest l2 = makeLayer("2");
  const Digest l3 = makeLayer("3");
  const ImageRecord a = makeImage("a", {"quay.io/a:1"}, {l1, l2});
  const ImageRecord b = makeImage("b", {"quay.io/b:1"}, {l2, l3});

  std::vector<std::string> garbage;
  ASSERT_EQ(store_->removeImage(a.id, garbage), "");
  std::sort(garbage.begin(), garbage.end());
  std::vector<std::string> expected = {store_->layerPath(l1), store_->blobPath(a.id),
                                       store_->blobPath(a.manifestDigest)};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(garbage, expected);
  EXPECT_EQ(store_->findById(a.id), nullptr);
  EXPECT_EQ(store_->find("quay.io/a:1"), nullptr);
  EXPECT_FALSE(exists(imagePath(a.id)));
  EXPECT_EQ(store_->layer(l1), nullptr);
  EXPECT_FALSE(exists(store_->layerPath(l1) + ".json"));  // the record goes at once
  EXPECT_NE(store_->layer(l2), nullptr);
  EXPECT_TRUE(exists(store_->layerPath(l2) + ".json"));

  garbage.clear();
  ASSERT_EQ(store_->removeImage(b.id, garbage), "");
  std::sort(garbage.begin(), garbage.end());
  expected = {store_->layerPath(l2), store_->layerPath(l3), store_->blobPath(b.id),
              store_->blobPath(b.manifestDigest)};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(garbage, expected);
  EXPECT_TRUE(store_->list().empty());

  // Removing an unknown image is not an error and collects nothing.
  garbage.clear();
  EXPECT_EQ(store_->removeImage(a.id, garbage), "");
  EXPECT_TRUE(garbage.empty());
}

TEST_F(ImageStoreTest, LeasedLayersAndBlobsAreKept) {
  const Digest l1 = makeLayer("1");
  const Digest l2 = makeLayer("2");
  const ImageRecord a = makeImage("a", {"quay.io/a:1"}, {l1, l2});
  // A pull under way relies on l1 and on a's manifest; l1 is leased twice (two pulls).
  store_->lease(l1);
  store_->lease(l1);
  store_->lease(a.manifestDigest);
  store_->release(l1);
  std::vector<std::string> garbage;
  ASSERT_EQ(store_->removeImage(a.id, garbage), "");
  std::sort(garbage.begin(), garbage.end());
  std::vector<std::string> expected = {store_->layerPath(l2), store_->blobPath(a.id)};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(garbage, expected);
  EXPECT_NE(store_->layer(l1), nullptr);

  // Released, the next image using nothing of l1 does not bring it back as garbage by itself,
  // but an image sharing it does once removed.
  store_->release(l1);
  store_->release(a.manifestDigest);
  store_->release(a.manifestDigest);  // releasing more than leased is harmless
  const ImageRecord c = makeImage("c", {"quay.io/c:1"}, {l1});
  garbage.clear();
  ASSERT_EQ(store_->removeImage(c.id, garbage), "");
  EXPECT_NE(std::find(garbage.begin(), garbage.end(), store_->layerPath(l1)), garbage.end());
}

TEST_F(ImageStoreTest, LoadRemovesWhatACrashLeftHalfDone) {
  const Digest l1 = makeLayer("kept");
  const ImageRecord kept = makeImage("kept", {"quay.io/kept:1"}, {l1});
  const std::string dir = store_->directory();

  // A download under way.
  const std::string ingest = store_->ingestPath(digestOf("partial"));
  std::ofstream(ingest) << "partial";
  ASSERT_EQ(mkdir((dir + "/ingest/tmpdir").c_str(), 0700), 0);
  std::ofstream(dir + "/ingest/tmpdir/x") << "x";
  // A layer being unpacked.
  const std::string unpacking = store_->unpackingPath(digestOf("unpacking"));
  ASSERT_EQ(mkdir(unpacking.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((unpacking + "/usr").c_str(), 0555), 0);
  // A layer directory whose record was never written.
  const std::string noRecord = store_->layerPath(digestOf("no record"));
  ASSERT_EQ(mkdir(noRecord.c_str(), 0755), 0);
  std::ofstream(noRecord + "/f") << "f";
  // A record whose directory is gone.
  const Digest gone = makeLayer("gone");
  ASSERT_EQ(std::system(("rm -rf " + store_->layerPath(gone)).c_str()), 0);
  // A record that names another layer than its file name.
  const Digest mislabelled = makeLayer("mislabelled");
  {
    Json json = Json::parse(readText(store_->layerPath(mislabelled) + ".json"));
    json["diffId"] = digestOf("something else").str();
    std::ofstream(store_->layerPath(mislabelled) + ".json") << json.dump();
  }
  // A layer no image uses (its pull did not finish).
  const Digest unused = makeLayer("unused");
  // An image whose layer is missing, and its blobs.
  const ImageRecord broken = makeImage("broken", {"quay.io/broken:1"}, {l1, gone});
  // An image record with a field of the wrong type, and one that is not JSON.
  const ImageRecord typed = makeImage("typed", {"quay.io/typed:1"}, {l1});
  {
    Json json = Json::parse(readText(imagePath(typed.id)));
    json["size"] = "large";
    std::ofstream(imagePath(typed.id)) << json.dump();
  }
  std::ofstream(dir + "/images/" + std::string(64, 'e') + ".json") << "{not json";
  std::ofstream(dir + "/images/stray.tmp") << "x";
  // A blob no image references.
  const Digest strayBlob = digestOf("stray");
  ASSERT_EQ(store_->putBlob(strayBlob, "stray"), "");

  std::vector<std::string> notes = reload();
  EXPECT_FALSE(notes.empty());

  EXPECT_FALSE(exists(ingest));
  EXPECT_FALSE(exists(dir + "/ingest/tmpdir"));
  EXPECT_TRUE(exists(dir + "/ingest"));
  EXPECT_FALSE(exists(unpacking));
  EXPECT_FALSE(exists(noRecord));
  EXPECT_FALSE(exists(store_->layerPath(gone) + ".json"));
  EXPECT_EQ(store_->layer(gone), nullptr);
  EXPECT_FALSE(exists(store_->layerPath(mislabelled)));
  EXPECT_FALSE(exists(store_->layerPath(mislabelled) + ".json"));
  EXPECT_EQ(store_->layer(mislabelled), nullptr);
  EXPECT_FALSE(exists(store_->layerPath(unused)));
  EXPECT_FALSE(exists(store_->layerPath(unused) + ".json"));
  EXPECT_EQ(store_->layer(unused), nullptr);
  EXPECT_EQ(store_->findById(broken.id), nullptr);
  EXPECT_FALSE(exists(imagePath(broken.id)));
  EXPECT_FALSE(store_->hasBlob(broken.id));
  EXPECT_FALSE(store_->hasBlob(broken.manifestDigest));
  EXPECT_EQ(store_->findById(typed.id), nullptr);
  EXPECT_FALSE(exists(imagePath(typed.id)));
  EXPECT_FALSE(exists(dir + "/images/" + std::string(64, 'e') + ".json"));
  EXPECT_FALSE(exists(dir + "/images/stray.tmp"));
  EXPECT_FALSE(store_->hasBlob(strayBlob));

  // What was complete is all still there.
  const ImageRecord* found = store_->find("quay.io/kept:1");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->id, kept.id);
  EXPECT_NE(store_->layer(l1), nullptr);
  EXPECT_TRUE(exists(store_->layerPath(l1) + "/file"));
  EXPECT_TRUE(store_->hasBlob(kept.id));
  EXPECT_TRUE(store_->hasBlob(kept.manifestDigest));
  EXPECT_EQ(store_->list().size(), 1u);

  // A second load finds nothing more to do.
  EXPECT_TRUE(reload().empty());
  EXPECT_EQ(store_->list().size(), 1u);
}

TEST_F(ImageStoreTest, ImageWhoseBlobIsMissingIsRemovedAtLoad) {
  const Digest l1 = makeLayer("1");
  const ImageRecord a = makeImage("a", {"quay.io/a:1"}, {l1});
  ASSERT_EQ(unlink(store_->blobPath(a.manifestDigest).c_str()), 0);
  reload();
  EXPECT_EQ(store_->findById(a.id), nullptr);
  EXPECT_FALSE(exists(imagePath(a.id)));
  EXPECT_FALSE(store_->hasBlob(a.id));
  EXPECT_EQ(store_->layer(l1), nullptr);  // used by no image any more
}

TEST_F(ImageStoreTest, TagClaimedByTwoRecordsGoesToTheNewer) {
  for (const bool olderFirst : {true, false}) {
    SCOPED_TRACE(olderFirst);
    const Digest layer = makeLayer(olderFirst ? "l1" : "l2");
    const ImageRecord older = makeImage(olderFirst ? "o1" : "o2", {}, {layer}, 100);
    const ImageRecord newer = makeImage(olderFirst ? "n1" : "n2", {"quay.io/app:1"}, {layer}, 200);
    // A crash between the two record writes of a tag move: both records claim the tag.
    Json json = Json::parse(readText(imagePath(older.id)));
    json["repoTags"] = Json::array({"quay.io/app:1", "quay.io/app:old"});
    std::ofstream(imagePath(older.id)) << json.dump();

    for (const auto& note : reload())
      ADD_FAILURE() << note;
    ASSERT_NE(store_->find("quay.io/app:1"), nullptr);
    EXPECT_EQ(store_->find("quay.io/app:1")->id, newer.id);
    ASSERT_NE(store_->findById(older.id), nullptr);
    ASSERT_NE(store_->findById(newer.id), nullptr);
    EXPECT_EQ(store_->findById(older.id)->repoTags, std::vector<std::string>{"quay.io/app:old"});
    EXPECT_EQ(store_->findById(newer.id)->repoTags, std::vector<std::string>{"quay.io/app:1"});
    // The loser's record is corrected on disk.
    EXPECT_EQ(Json::parse(readText(imagePath(older.id)))["repoTags"],
              Json::array({"quay.io/app:old"}));
    std::vector<std::string> garbage;
    ASSERT_EQ(store_->removeImage(older.id, garbage), "");
    ASSERT_EQ(store_->removeImage(newer.id, garbage), "");
    EXPECT_EQ(garbage.size(), 5u);  // the layer, two configs, two manifests
    for (const auto& path : garbage)
      ASSERT_EQ(std::system(("rm -rf " + path).c_str()), 0);
  }
}

}  // namespace
}  // namespace monocri::oci
