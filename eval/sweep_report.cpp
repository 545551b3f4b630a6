// Sweep reports: markdown table, CSV, and an SVG plot written by hand (no plotting library).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "eval/sweep.h"

namespace scoreflow::eval {
namespace {

std::string num(double v, int digits = 6) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

/// A row of the report: the sampler, or "sampler, schedule" with a schedule axis.
std::string row_of(const SweepCell& c) { return c.schedule.empty() ? c.sampler : c.sampler + ", " + c.schedule; }

bool has_schedule_axis(const std::vector<SweepCell>& cells) {
  return std::any_of(cells.begin(), cells.end(), [](const SweepCell& c) { return !c.schedule.empty(); });
}

std::vector<std::string> rows_in_order(const std::vector<SweepCell>& cells) {
  std::vector<std::string> names;
  for (const auto& c : cells)
    if (std::find(names.begin(), names.end(), row_of(c)) == names.end()) names.push_back(row_of(c));
  return names;
}

std::vector<int> budgets_in_order(const std::vector<SweepCell>& cells) {
  std::vector<int> b;
  for (const auto& c : cells)
    if (std::find(b.begin(), b.end(), c.nfe_budget) == b.end()) b.push_back(c.nfe_budget);
  return b;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '<')
      out += "&lt;";
    else if (ch == '>')
      out += "&gt;";
    else if (ch == '&')
      out += "&amp;";
    else if (ch == '"')
      out += "&quot;";
    else
      out += ch;
  }
  return out;
}

/// About five "nice" tick values (1, 2, 5 × 10^k) covering [lo, hi].
std::vector<double> linear_ticks(double lo, double hi) {
  const double span = hi - lo;
  double step = std::pow(10.0, std::floor(std::log10(span / 5)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (span / (step * m) <= 6) {
      step *= m;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + 1e-9 * span; t += step)
    ticks.push_back(std::abs(t) < 1e-12 * span ? 0 : t);
  return ticks;
}

/// Powers of ten inside [lo, hi] (given as log10 values); 1-2-5 steps when the range is short.
std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> ticks;
  const bool fine = hi - lo < 1.5;
  for (int e = static_cast<int>(std::floor(lo)); e <= static_cast<int>(std::ceil(hi)); ++e)
    for (double m : fine ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
      const double v = std::log10(m) + e;
      if (v >= lo - 1e-9 && v <= hi + 1e-9) ticks.push_back(v);
    }
  return ticks;
}

const char* kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

}  // namespace

std::string sweep_markdown(const std::vector<SweepCell>& cells, const std::string& metric) {
  const auto rows = rows_in_order(cells);
  const auto budgets = budgets_in_order(cells);
  const bool axis = has_schedule_axis(cells);
  std::ostringstream os;
  os << "| " << metric << " |" << (axis ? " schedule |" : "");
  for (int b : budgets) os << " NFE " << b << " |";
  os << "\n|---|" << (axis ? "---|" : "");
  for (size_t i = 0; i < budgets.size(); ++i) os << "---|";
  os << "\n";
  for (const auto& r : rows) {
    const SweepCell& first =
        *std::find_if(cells.begin(), cells.end(), [&](const SweepCell& c) { return row_of(c) == r; });
    os << "| " << first.sampler << " |" << (axis ? " " + first.schedule + " |" : "");
    for (int b : budgets) {
      auto it = std::find_if(cells.begin(), cells.end(),
                             [&](const SweepCell& c) { return row_of(c) == r && c.nfe_budget == b; });
      if (it == cells.end()) {
        os << " |";
      } else if (!it->ok()) {
        std::string e = it->error;
        std::replace(e.begin(), e.end(), '|', '/');
        os << " " << e << " |";
      } else {
        os << " " << num(it->metric, 5);
        if (it->nfe_used != it->nfe_budget) os << " (NFE " << it->nfe_used << ")";
        os << " |";
      }
    }
    os << "\n";
  }
  return os.str();
}

std::string sweep_csv(const std::vector<SweepCell>& cells, const std::string& metric) {
  std::ostringstream os;
  const bool axis = has_schedule_axis(cells);
  os << "sampler," << (axis ? "schedule," : "") << "nfe_budget,steps,nfe_used," << csv_field(metric)
     << ",seconds,error\n";
  for (const auto& c : cells) {
    os << csv_field(c.sampler) << "," << (axis ? csv_field(c.schedule) + "," : "") << c.nfe_budget << ",";
    if (c.ok())
      os << c.steps << "," << c.nfe_used << "," << num(c.metric, 10) << "," << num(c.seconds, 4) << ",\n";
    else
      os << ",,,," << csv_field(c.error) << "\n";
  }
  return os.str();
}

std::string sweep_svg(const std::vector<SweepCell>& cells, const PlotOptions& o) {
  const double left = 80, right = 150, top = 40, bottom = 55;
  const double pw = o.width - left - right, ph = o.height - top - bottom;
  auto fx = [&](double v) { return o.log_x ? std::log10(v) : v; };
  auto fy = [&](double v) { return o.log_y ? std::log10(v) : v; };
  std::vector<const SweepCell*> pts;
  for (const auto& c : cells)
    if (c.ok() && std::isfinite(c.metric) && (!o.log_y || c.metric > 0) && c.nfe_used > 0) pts.push_back(&c);
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (!pts.empty()) {
    x0 = x1 = fx(static_cast<double>(pts[0]->nfe_used));
    y0 = y1 = fy(pts[0]->metric);
    for (auto* p : pts) {
      x0 = std::min(x0, fx(static_cast<double>(p->nfe_used))), x1 = std::max(x1, fx(static_cast<double>(p->nfe_used)));
      y0 = std::min(y0, fy(p->metric)), y1 = std::max(y1, fy(p->metric));
    }
  }
  auto pad = [](double& lo, double& hi, bool log) {
    if (hi - lo < 1e-12) {
      const double w = log ? 0.5 : std::max(std::abs(lo) * 0.1, 1e-3);
      lo -= w, hi += w;
    } else {
      const double w = 0.05 * (hi - lo);
      lo -= w, hi += w;
    }
  };
  pad(x0, x1, o.log_x);
  pad(y0, y1, o.log_y);
  auto px = [&](double v) { return left + (v - x0) / (x1 - x0) * pw; };
  auto py = [&](double v) { return top + ph - (v - y0) / (y1 - y0) * ph; };

  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << o.width << "\" height=\"" << o.height
     << "\" viewBox=\"0 0 " << o.width << " " << o.height << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  os << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  os << "<text x=\"" << left + pw / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">" << xml_escape(o.title)
     << "</text>\n";
  // Grid and ticks.
  auto xticks = o.log_x ? log_ticks(x0, x1) : linear_ticks(x0, x1);
  auto yticks = o.log_y ? log_ticks(y0, y1) : linear_ticks(y0, y1);
  for (double t : xticks) {
    os << "<line x1=\"" << px(t) << "\" y1=\"" << top << "\" x2=\"" << px(t) << "\" y2=\"" << top + ph
       << "\" stroke=\"#e0e0e0\"/>\n";
    os << "<text x=\"" << px(t) << "\" y=\"" << top + ph + 18 << "\" text-anchor=\"middle\">"
       << num(o.log_x ? std::pow(10, t) : t, 4) << "</text>\n";
  }
  for (double t : yticks) {
    os << "<line x1=\"" << left << "\" y1=\"" << py(t) << "\" x2=\"" << left + pw << "\" y2=\"" << py(t)
       << "\" stroke=\"#e0e0e0\"/>\n";
    os << "<text x=\"" << left - 6 << "\" y=\"" << py(t) + 4 << "\" text-anchor=\"end\">"
       << num(o.log_y ? std::pow(10, t) : t, 4) << "</text>\n";
  }
  os << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
     << "\" fill=\"none\" stroke=\"black\"/>\n";
  os << "<text x=\"" << left + pw / 2 << "\" y=\"" << o.height - 12 << "\" text-anchor=\"middle\">"
     << xml_escape(o.x_label) << (o.log_x ? " (log scale)" : "") << "</text>\n";
  os << "<text transform=\"translate(18," << top + ph / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
     << xml_escape(o.y_label) << (o.log_y ? " (log scale)" : "") << "</text>\n";
  // One series per sampler (and schedule).
  const auto samplers = rows_in_order(cells);
  for (size_t s = 0; s < samplers.size(); ++s) {
    const char* colour = kColours[s % 10];
    std::vector<const SweepCell*> series;
    for (auto* p : pts)
      if (row_of(*p) == samplers[s]) series.push_back(p);
    std::sort(series.begin(), series.end(), [](auto* a, auto* b) { return a->nfe_used < b->nfe_used; });
    if (series.size() > 1) {
      os << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"2\" points=\"";
      for (auto* p : series) os << px(fx(static_cast<double>(p->nfe_used))) << "," << py(fy(p->metric)) << " ";
      os << "\"/>\n";
    }
    for (auto* p : series)
      os << "<circle cx=\"" << px(fx(static_cast<double>(p->nfe_used))) << "\" cy=\"" << py(fy(p->metric))
         << "\" r=\"3.5\" fill=\"" << colour << "\"><title>" << xml_escape(row_of(*p)) << " NFE " << p->nfe_used << ": "
         << num(p->metric) << "</title></circle>\n";
    const double ly = top + 10 + 18 * static_cast<double>(s);
    os << "<line x1=\"" << left + pw + 12 << "\" y1=\"" << ly << "\" x2=\"" << left + pw + 36 << "\" y2=\"" << ly
       << "\" stroke=\"" << colour << "\" stroke-width=\"2\"/>\n";
    os << "<text x=\"" << left + pw + 42 << "\" y=\"" << ly + 4 << "\">" << xml_escape(samplers[s]) << "</text>\n";
  }
  os << "</svg>\n";
  return os.str();
}

}  // namespace scoreflow::eval
