//! MovieLens: movies become catalog items (first genre as category, all genres kept), raters
//! become users, and every rating becomes a `rating` event with its stars.
//!
//! Three layouts are recognised in a folder: `ratings.csv` + `movies.csv` (+ optional
//! `tags.csv`, ml-latest and ml-25m style), `ratings.dat` + `movies.dat` (ml-1m, ml-10m), and
//! `u.data` + `u.item` (ml-100k). Event ids are `ml:{user}:{movie}:{unix seconds}`, so a
//! re-import stores nothing twice.

use crate::text::{csv_reader, line_of, read_text, required_column, unix_to_ts};
use crate::{Bundle, Error, Location, Result};
use marquee_domain::{Actor, Event, EventId, EventKind, Item, ItemId, Timestamp, User, UserId};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The 19 genre flags of ml-100k's `u.item`, in file order.
const U_ITEM_GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// Category given to movies without any genre.
pub const NO_GENRE_CATEGORY: &str = "Unknown";

struct Movie {
    id: String,
    title: String,
    genres: Vec<String>,
}

struct Rating {
    user: String,
    movie: String,
    stars: f32,
    unix: i64,
    location: Location,
    path: PathBuf,
}

/// Which layout a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `ratings.csv` + `movies.csv`.
    Csv,
    /// `ratings.dat` + `movies.dat`.
    Dat,
    /// `u.data` + `u.item`.
    Classic100k,
}

/// Detects the layout of a MovieLens folder.
pub fn detect(dir: &Path) -> Result<Layout> {
    let has = |name: &str| dir.join(name).is_file();
    if has("ratings.csv") && has("movies.csv") {
        Ok(Layout::Csv)
    } else if has("ratings.dat") && has("movies.dat") {
        Ok(Layout::Dat)
    } else if has("u.data") && has("u.item") {
        Ok(Layout::Classic100k)
    } else if !dir.is_dir() {
        Err(Error::unsupported(
            dir,
            "not a folder (expected a MovieLens folder)",
        ))
    } else {
        Err(Error::unsupported(
            dir,
            "no MovieLens files found: expected ratings.csv + movies.csv, ratings.dat + movies.dat, or u.data + u.item",
        ))
    }
}

/// Reads a MovieLens folder of any of the three layouts.
pub fn read(dir: &Path) -> Result<Bundle> {
    let now = chrono::Utc::now();
    let (movies, ratings, tags) = match detect(dir)? {
        Layout::Csv => {
            let tags_path = dir.join("tags.csv");
            let tags = if tags_path.is_file() {
                read_tags_csv(&tags_path)?
            } else {
                HashMap::new()
            };
            (
                read_movies_csv(&dir.join("movies.csv"))?,
                read_ratings_csv(&dir.join("ratings.csv"))?,
                tags,
            )
        }
        Layout::Dat => (
            read_movies_dat(&dir.join("movies.dat"))?,
            read_separated(&dir.join("ratings.dat"), "::")?,
            HashMap::new(),
        ),
        Layout::Classic100k => (
            read_u_item(&dir.join("u.item"))?,
            read_separated(&dir.join("u.data"), "\t")?,
            HashMap::new(),
        ),
    };
    build(movies, ratings, tags, now)
}

fn build(
    movies: Vec<Movie>,
    ratings: Vec<Rating>,
    tags: HashMap<String, Vec<String>>,
    now: Timestamp,
) -> Result<Bundle> {
    let known: HashMap<&str, usize> = movies
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    let mut first_rating: Vec<Option<i64>> = vec![None; movies.len()];
    let mut users: BTreeMap<&str, i64> = BTreeMap::new();
    let mut events = Vec::with_capacity(ratings.len());
    for r in &ratings {
        let bad =
            |field: &str, message: String| Error::malformed(&r.path, r.location, field, message);
        let Some(&movie_index) = known.get(r.movie.as_str()) else {
            return Err(bad(
                "movieId",
                format!("movie {} is not in the movies file", r.movie),
            ));
        };
        let timestamp = unix_to_ts(r.unix)
            .ok_or_else(|| bad("timestamp", format!("{} is not a valid time", r.unix)))?;
        let user = UserId::new(r.user.as_str()).map_err(|e| bad("userId", e.to_string()))?;
        let event = Event {
            id: EventId::new(format!("ml:{}:{}:{}", r.user, r.movie, r.unix))
                .map_err(|e| bad("userId", e.to_string()))?,
            actor: Actor::User(user),
            item: Some(ItemId::new(r.movie.as_str()).map_err(|e| bad("movieId", e.to_string()))?),
            kind: EventKind::Rating,
            value: Some(r.stars),
            timestamp,
            context: None,
        };
        event
            .validate(now)
            .map_err(|e| bad(rating_field(e.field()), e.to_string()))?;
        events.push(event);
        let first = &mut first_rating[movie_index];
        *first = Some(first.map_or(r.unix, |f| f.min(r.unix)));
        let u = users.entry(r.user.as_str()).or_insert(r.unix);
        *u = (*u).min(r.unix);
    }
    let earliest = ratings.iter().map(|r| r.unix).min().unwrap_or(0);
    let mut items = Vec::with_capacity(movies.len());
    for (movie, first) in movies.iter().zip(&first_rating) {
        let category = movie
            .genres
            .first()
            .cloned()
            .unwrap_or_else(|| NO_GENRE_CATEGORY.to_owned());
        let created = unix_to_ts(first.unwrap_or(earliest)).unwrap_or(now);
        let mut item = Item::new(
            ItemId::new(movie.id.as_str())
                .map_err(|e| Error::unsupported(Path::new("movies"), e.to_string()))?,
            movie.title.clone(),
            category,
            created,
        );
        item.genres.clone_from(&movie.genres);
        if let Some(t) = tags.get(&movie.id) {
            item.attributes = serde_json::json!({ "tags": t });
        }
        items.push(item);
    }
    let users = users
        .into_iter()
        .map(|(id, first)| {
            Ok(User::new(
                UserId::new(id)
                    .map_err(|e| Error::unsupported(Path::new("ratings"), e.to_string()))?,
                unix_to_ts(first).unwrap_or(now),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Bundle {
        items,
        items_are_placeholders: false,
        users,
        users_are_placeholders: true,
        orders: Vec::new(),
        events,
        notes: Vec::new(),
    })
}

fn rating_field(domain_field: &str) -> &str {
    match domain_field {
        "value" => "rating",
        "item_id" => "movieId",
        "user_id" => "userId",
        other => other,
    }
}

/// The genres of a `A|B|C` field, each checked as the catalog will check it.
fn genres_of(path: &Path, location: Location, text: &str) -> Result<Vec<String>> {
    text.split('|')
        .map(str::trim)
        .filter(|g| !g.is_empty() && *g != "(no genres listed)")
        .map(|g| {
            marquee_domain::check_text("genres", g, marquee_domain::MAX_CATEGORY_LEN)
                .map_err(|e| Error::malformed(path, location, "genres", e.to_string()))?;
            Ok(g.to_owned())
        })
        .collect()
}

fn check_title(path: &Path, location: Location, title: &str) -> Result<()> {
    marquee_domain::check_text("title", title, 1_000)
        .map_err(|e| Error::malformed(path, location, "title", e.to_string()))
}

fn check_id(path: &Path, location: Location, field: &str, id: &str) -> Result<()> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::malformed(
            path,
            location,
            field,
            format!("{id:?} is not a numeric id"),
        ));
    }
    Ok(())
}

fn read_movies_csv(path: &Path) -> Result<Vec<Movie>> {
    let mut reader = csv_reader(path, b',')?;
    let headers = reader.headers().map_err(|e| Error::csv(path, &e))?.clone();
    let id = required_column(path, &headers, &["movieId"])?;
    let title = required_column(path, &headers, &["title"])?;
    let genres = required_column(path, &headers, &["genres"])?;
    let mut movies = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| Error::csv(path, &e))?;
        let at = line_of(&record);
        let movie_id = record[id].trim();
        check_id(path, at, "movieId", movie_id)?;
        check_title(path, at, &record[title])?;
        movies.push(Movie {
            id: movie_id.to_owned(),
            title: record[title].trim().to_owned(),
            genres: genres_of(path, at, &record[genres])?,
        });
    }
    Ok(movies)
}

fn read_ratings_csv(path: &Path) -> Result<Vec<Rating>> {
    let mut reader = csv_reader(path, b',')?;
    let headers = reader.headers().map_err(|e| Error::csv(path, &e))?.clone();
    let user = required_column(path, &headers, &["userId"])?;
    let movie = required_column(path, &headers, &["movieId"])?;
    let rating = required_column(path, &headers, &["rating"])?;
    let ts = required_column(path, &headers, &["timestamp"])?;
    let mut out = Vec::new();
    let path_buf = path.to_owned();
    for record in reader.records() {
        let record = record.map_err(|e| Error::csv(path, &e))?;
        let at = line_of(&record);
        out.push(parse_rating(
            &path_buf,
            at,
            [&record[user], &record[movie], &record[rating], &record[ts]],
        )?);
    }
    Ok(out)
}

fn parse_rating(path: &Path, at: Location, fields: [&str; 4]) -> Result<Rating> {
    let [user, movie, stars, unix] = fields.map(str::trim);
    check_id(path, at, "userId", user)?;
    check_id(path, at, "movieId", movie)?;
    let stars: f32 = stars
        .parse()
        .map_err(|_| Error::malformed(path, at, "rating", format!("{stars:?} is not a number")))?;
    let unix: i64 = unix.parse().map_err(|_| {
        Error::malformed(
            path,
            at,
            "timestamp",
            format!("{unix:?} is not unix seconds"),
        )
    })?;
    Ok(Rating {
        user: user.to_owned(),
        movie: movie.to_owned(),
        stars,
        unix,
        location: at,
        path: path.to_owned(),
    })
}

/// `ratings.dat` (`::`) and `u.data` (tab): user, movie, rating, timestamp, no header.
fn read_separated(path: &Path, separator: &str) -> Result<Vec<Rating>> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = Location::Line(n as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(separator).collect();
        if fields.len() != 4 {
            return Err(Error::malformed(
                path,
                at,
                "record",
                format!(
                    "expected 4 fields separated by {separator:?}, found {}",
                    fields.len()
                ),
            ));
        }
        out.push(parse_rating(
            path,
            at,
            [fields[0], fields[1], fields[2], fields[3]],
        )?);
    }
    Ok(out)
}

fn read_movies_dat(path: &Path) -> Result<Vec<Movie>> {
    let text = read_text(path)?;
    let mut movies = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = Location::Line(n as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split("::").collect();
        if fields.len() != 3 {
            return Err(Error::malformed(
                path,
                at,
                "record",
                format!(
                    "expected MovieID::Title::Genres, found {} fields",
                    fields.len()
                ),
            ));
        }
        check_id(path, at, "MovieID", fields[0].trim())?;
        check_title(path, at, fields[1])?;
        movies.push(Movie {
            id: fields[0].trim().to_owned(),
            title: fields[1].trim().to_owned(),
            genres: genres_of(path, at, fields[2])?,
        });
    }
    Ok(movies)
}

fn read_u_item(path: &Path) -> Result<Vec<Movie>> {
    let text = read_text(path)?;
    let mut movies = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = Location::Line(n as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        if fields.len() != 5 + U_ITEM_GENRES.len() {
            return Err(Error::malformed(
                path,
                at,
                "record",
                format!("expected 24 fields separated by |, found {}", fields.len()),
            ));
        }
        check_id(path, at, "movie id", fields[0].trim())?;
        check_title(path, at, fields[1])?;
        let mut genres = Vec::new();
        for (flag, genre) in fields[5..].iter().zip(U_ITEM_GENRES) {
            match flag.trim() {
                "1" if genre != "unknown" => genres.push(genre.to_owned()),
                "0" | "1" => {}
                other => {
                    return Err(Error::malformed(
                        path,
                        at,
                        genre,
                        format!("genre flag {other:?} is not 0 or 1"),
                    ));
                }
            }
        }
        movies.push(Movie {
            id: fields[0].trim().to_owned(),
            title: fields[1].trim().to_owned(),
            genres,
        });
    }
    Ok(movies)
}

/// Distinct tags per movie (case-insensitive, first spelling kept), in file order.
fn read_tags_csv(path: &Path) -> Result<HashMap<String, Vec<String>>> {
    let mut reader = csv_reader(path, b',')?;
    let headers = reader.headers().map_err(|e| Error::csv(path, &e))?.clone();
    let movie = required_column(path, &headers, &["movieId"])?;
    let tag = required_column(path, &headers, &["tag"])?;
    let mut tags: HashMap<String, Vec<String>> = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| Error::csv(path, &e))?;
        let text = record[tag].trim();
        if text.is_empty() {
            continue;
        }
        let list = tags.entry(record[movie].trim().to_owned()).or_default();
        if !list.iter().any(|t| t.eq_ignore_ascii_case(text)) {
            list.push(text.to_owned());
        }
    }
    Ok(tags)
}
