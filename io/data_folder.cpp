/// Image-folder datasets: every PNG/JPEG/BMP under a directory, recursively, in sorted path order
/// (so item i is the same image on every machine), decoded once at open.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "io/dataset_util.h"
#include "io/fsutil.h"
#include "scoreflow/error.h"
#include "scoreflow/image.h"

namespace scoreflow::io::detail {
namespace fs = std::filesystem;

namespace {

bool is_image_name(const fs::path& p) {
  const std::string name = p.filename().string();
  // Dot files include macOS "._x.png" resource forks, which are not images.
  if (name.empty() || name[0] == '.') return false;
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

std::vector<std::string> list_images(const std::string& dir) {
  std::vector<std::string> files;
  std::vector<std::string> all;
  try {
    all = walk_files(dir);
  } catch (const Error&) {
    fail("cannot list image folder '", dir, "': ", std::strerror(errno));
  }
  for (const std::string& f : all)
    if (is_image_name(fs::path(f))) files.push_back(f);
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

std::unique_ptr<Dataset> open_image_folder(const std::string& dir, const DatasetOptions& options) {
  const std::vector<std::string> files = list_images(dir);
  if (files.empty()) fail("image folder '", dir, "' holds no .png/.jpg/.jpeg/.bmp files");

  // Channels: the wanted C, else the first image's (grey+alpha counts as grey). stb converts
  // while decoding, with the same luminance weights as TensorDataset.
  int channels = options.shape.empty() ? 0 : static_cast<int>(options.shape[0]);
  if (channels == 2 || channels > 4) fail("image folder '", dir, "': cannot produce ", channels, " channels");
  std::vector<torch::Tensor> images;
  std::string first;
  int64_t skipped = 0, h0 = 0, w0 = 0;
  for (const std::string& file : files) {
    torch::Tensor img;
    try {
      img = read_image(file, channels);
    } catch (const Error&) {
      if (!options.skip_bad) throw;  // the message already names the file
      ++skipped;
      continue;
    }
    if (channels == 0) channels = img.size(2) == 2 ? 1 : static_cast<int>(img.size(2));
    if (img.size(2) != channels) img = read_image(file, channels);
    if (first.empty()) {
      first = file;
      // Items the model's data_prep pads stay as they are (TensorDataset pads them).
      const bool padded = pads({channels, img.size(0), img.size(1)}, options);
      h0 = options.shape.empty() || padded ? img.size(0) : options.shape[1];
      w0 = options.shape.empty() || padded ? img.size(1) : options.shape[2];
    }
    if (img.size(0) != h0 || img.size(1) != w0) {
      if (!resizes(options)) {
        if (options.shape.empty() || h0 != options.shape[1] || w0 != options.shape[2])
          fail("image folder '", dir, "' has mixed shapes: '", file, "' is ", img.size(0), "x", img.size(1), " but '",
               first, "' is ", h0, "x", w0, " (ask for a shape with resize to resize + centre-crop)");
        fail_mismatch("image '" + file + "' is " + std::to_string(channels) + "x" + std::to_string(img.size(0)) + "x" +
                          std::to_string(img.size(1)),
                      {channels, img.size(0), img.size(1)}, options);
      }
      img = resize_center_crop(img, h0, w0);
    }
    images.push_back(img);
  }
  if (images.empty()) fail("image folder '", dir, "': all ", files.size(), " image files were unreadable and skipped");
  torch::Tensor stored = torch::stack(images).permute({0, 3, 1, 2}).contiguous();
  std::string note = "uint8";
  if (resizes(options) && !options.shape.empty()) note += ", resized + centre-cropped where needed";
  return std::make_unique<TensorDataset>(stored, "image folder", dir, note, options, skipped);
}

}  // namespace scoreflow::io::detail
